"""An image of a :class:`zoomin.data.view_cache.ViewCache`: views from the HDF5 cache, the rest
from its image file, decoded only when first needed."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from zoomin.image_access import ImageAccess, InMemoryImage, scale_key, to_chw_float

if TYPE_CHECKING:
    from zoomin.data.view_cache import ViewCache

log = logging.getLogger(__name__)


class CachedImage(ImageAccess):
    """An :class:`~zoomin.image_access.ImageAccess` backed by a :class:`ViewCache` and an image file.

    Views at cached scales are read from the HDF5 file; other scales, regions and patches decode the
    full-resolution image (once, on first use) and behave exactly like ``InMemoryImage``.
    """

    def __init__(self, cache: ViewCache, image_id: str, path: Path, size: tuple[int, int]):
        self._cache = cache
        self.image_id = image_id
        self.path = path
        self._size = size
        self._full: InMemoryImage | None = None

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    @property
    def channels(self) -> int:
        return 3

    @property
    def source(self) -> Path:
        return self.path

    def _decoded(self) -> InMemoryImage:
        if self._full is None:
            self._full = self._cache.decoded(self.image_id, self.path, self._size)
        return self._full

    def view_array(self, scale: float) -> np.ndarray:
        if scale_key(scale) in {scale_key(s) for s in self._cache.scales}:
            return self._cache.view_array(self.image_id, scale)
        log.debug("scale %s of %s not cached: computing it from the image", scale, self.image_id)
        return self._decoded().view_array(scale)

    def view(self, scale: float) -> torch.Tensor:
        return to_chw_float(self.view_array(scale))

    def view_rows(self, scale: float, top: int, stop: int) -> torch.Tensor:
        if scale_key(scale) in {scale_key(s) for s in self._cache.scales}:
            return to_chw_float(self._cache.view_rows(self.image_id, scale, top, stop))
        return self._decoded().view_rows(scale, top, stop)

    def region_view(self, top: int, left: int, size: int, scale: float) -> torch.Tensor:
        return self._decoded().region_view(top, left, size, scale)

    def patches(self, centres: torch.Tensor, size: int) -> torch.Tensor:
        return self._decoded().patches(centres, size)

    def region_array(self, top: int, left: int, size: int, scale: float) -> np.ndarray:
        return self._decoded().region_array(top, left, size, scale)

    def patch_arrays(self, centres, size: int) -> np.ndarray:
        return self._decoded().patch_arrays(centres, size)

    def mask_view(self, scale: float) -> np.ndarray | None:
        return self._cache.mask_view(self.image_id, scale)
