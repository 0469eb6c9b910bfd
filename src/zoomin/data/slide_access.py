"""Slide-backed :class:`~zoomin.image_access.ImageAccess`: OpenSlide pyramid + per-slide HDF5 cache.

A whole-slide image is never read whole at full resolution:

* ``view(scale)`` comes from the slide cache (:mod:`zoomin.data.slide_cache`) when it holds that
  scale; otherwise it is rendered block by block from the best pyramid level (the coarsest level
  whose downsample is <= 1/scale), refusing to decode a level larger than ``max_read_pixels``.
  ``view_rows(scale, top, stop)`` reads one band of its rows the same way (streamed inference).
* ``region_view(top, left, size, scale)`` reads only that region, at the best level for ``scale``,
  and resizes it (box filter) to ``round(size * scale)`` pixels.
* ``patches(centres, size)`` reads ``size`` x ``size`` regions at level 0, one per centre, with
  ``read_workers`` threads (:meth:`~zoomin.data.slide_reader.SlideReader.read_many`; the same
  pixels in the same order as one by one), by default as many as torch may use: the cores the
  job was given, idle while the model waits for its patches (benchmarks/README.md, "Data path").
* ``view_array``, ``region_array`` and ``patch_arrays`` give the same pixels as uint8 arrays, which
  the batched models read (:mod:`zoomin.models.batching`).
* ``tile_mask(tile_size)`` says which tiles of the model's tile grid contain tissue (from the
  cache's tissue mask), so a model may give background tiles zero attention without reading them.

Regions outside the slide are zero (black), as :class:`~zoomin.image_access.InMemoryImage` pads.
``read_stats`` counts the pixels decoded per pyramid level, which the tests and the benchmark use
to check that one inference touches a tiny fraction of level 0. Objects pickle without their open
handles (they reopen lazily), so they can be sent to DataLoader workers.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from zoomin.data.slide_reader import (  # noqa: F401  (re-exported: the slide API lives here)
    BLOCK,
    DEFAULT_MAX_READ_PIXELS,
    SlideReader,
    best_level,
    open_slide,
)
from zoomin.errors import InputFileError
from zoomin.image_access import ImageAccess, patch_corner, scale_key, scaled_length, to_chw_float, view_shape

log = logging.getLogger(__name__)

# The default's bound: one call reads a few dozen patches (Zoom-In's N sub-tiles, MIL's instances).
MAX_READ_WORKERS = 8


class SlideImage(ImageAccess):
    """A whole-slide image seen through :class:`~zoomin.image_access.ImageAccess`.

    ``cache_path`` is the slide's HDF5 cache (may be ``None``: views are then rendered from the
    pyramid and the tissue mask computed on demand). ``max_read_pixels`` bounds how much of one
    pyramid level a single read may decode. ``read_workers`` threads read the patches of one
    ``patches`` call (1: one after the other; ``None``: ``torch.get_num_threads()`` at the call,
    at most ``MAX_READ_WORKERS``).
    """

    def __init__(
        self,
        slide_path: str | Path,
        cache_path: str | Path | None = None,
        max_read_pixels: int = DEFAULT_MAX_READ_PIXELS,
        read_workers: int | None = None,
    ):
        self.slide_path = Path(slide_path)
        self.cache_path = Path(cache_path) if cache_path is not None else None
        self.reader = SlideReader(self.slide_path, max_read_pixels)
        self.read_workers = read_workers
        self._cache: h5py.File | None = None
        self._views: dict[float, np.ndarray] = {}
        self._size: tuple[int, int] | None = None
        if self.cache_path is not None and not self.cache_path.is_file():
            raise InputFileError(self.cache_path, "slide cache not found (run `zoomin slide-cache`)")

    # -- handles -------------------------------------------------------------------------------
    def _h5(self) -> h5py.File | None:
        if self.cache_path is None:
            return None
        if self._cache is None:
            try:
                self._cache = h5py.File(self.cache_path, "r")
            except OSError as error:
                raise InputFileError(self.cache_path, f"cannot read slide cache: {error}") from None
        return self._cache

    def close(self) -> None:
        """Close the OpenSlide handle and the HDF5 cache (they reopen if used again)."""
        self.reader.close()
        if self._cache is not None:
            self._cache.close()
            self._cache = None

    def __enter__(self) -> SlideImage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_cache"] = None
        return state

    @property
    def source(self) -> Path:
        return self.slide_path

    @property
    def mpp(self) -> float | None:
        """Level-0 microns per pixel from the slide's ``openslide.mpp-x`` (``None`` when absent)."""
        from zoomin.data.slide_cache import slide_mpp

        return slide_mpp(self.reader)

    @property
    def read_stats(self) -> Counter[int]:
        """Pixels decoded so far, per pyramid level (level 0 = full resolution)."""
        return self.reader.read_stats

    # -- ImageAccess ---------------------------------------------------------------------------
    @property
    def size(self) -> tuple[int, int]:
        if self._size is None:
            cache = self._h5()
            if cache is not None and "height" in cache.attrs:
                self._size = int(cache.attrs["height"]), int(cache.attrs["width"])
            else:
                self._size = self.reader.size
        return self._size

    @property
    def channels(self) -> int:
        return 3

    def view_array(self, scale: float) -> np.ndarray:
        """The ``view(scale)`` pixels as HxWx3 uint8 (cache first, else rendered and kept)."""
        key = float(scale)
        cache = self._h5()
        if cache is not None and scale_key(key) in cache:
            return np.asarray(cache[scale_key(key)][...])
        if key not in self._views:
            log.debug("%s: view at scale %g not cached; rendering from the pyramid", self.slide_path, key)
            self._views[key] = self.reader.render_view(key)
        return self._views[key]

    def view(self, scale: float) -> torch.Tensor:
        return to_chw_float(self.view_array(scale))

    def view_rows(self, scale: float, top: int, stop: int) -> torch.Tensor:
        """Rows ``[top, stop)`` of ``view(scale)``: only those rows of the cache's chunked dataset,
        or, without a cache, only that band rendered from the pyramid (as the cache builder does)."""
        key = float(scale)
        cache = self._h5()
        if cache is not None and scale_key(key) in cache:
            return to_chw_float(np.asarray(cache[scale_key(key)][top:stop]))
        if key in self._views:
            return to_chw_float(self._views[key][top:stop])
        height, width = self.size
        out_h, out_w = view_shape(self.size, key)
        stop = min(stop, out_h)
        if stop <= top:
            return torch.zeros((3, 0, out_w))
        per_y = height / out_h
        return to_chw_float(self.reader.render(top * per_y, 0, (stop - top) * per_y, width, stop - top, out_w))

    def region_array(self, top: int, left: int, size: int, scale: float) -> np.ndarray:
        """The region of :meth:`region_view` as HxWx3 uint8 (the batched models read these)."""
        side = scaled_length(size, scale)
        return self.reader.render(top, left, size, size, side, side)

    def region_view(self, top: int, left: int, size: int, scale: float) -> torch.Tensor:
        return to_chw_float(self.region_array(top, left, size, scale))

    def patch_arrays(self, centres, size: int) -> np.ndarray:
        """The patches of :meth:`patches` as NxHxWx3 uint8 (``centres``: any ``(n, 2)`` array-like)."""
        rows = torch.as_tensor(centres).reshape(-1, 2).tolist()
        boxes = [(patch_corner(cy, size), patch_corner(cx, size), size, size) for cy, cx in rows]
        stack = np.empty((len(rows), size, size, 3), dtype=np.uint8)
        workers = self.read_workers or min(MAX_READ_WORKERS, torch.get_num_threads())
        for index, pixels in enumerate(self.reader.read_many(0, boxes, workers)):
            stack[index] = pixels
        return stack

    def patches(self, centres: torch.Tensor, size: int) -> torch.Tensor:
        return torch.from_numpy(self.patch_arrays(centres, size)).permute(0, 3, 1, 2).float().div_(255.0)

    # -- tissue --------------------------------------------------------------------------------
    def tissue_mask(self) -> np.ndarray:
        """Boolean tissue mask over the whole slide (from the cache, else computed at ~1/32)."""
        cache = self._h5()
        if cache is not None and "tissue_mask" in cache:
            return np.asarray(cache["tissue_mask"][...], dtype=bool)
        from zoomin.data.tissue import tissue_mask

        height, width = self.size
        scale = min(1.0 / 32.0, 2048.0 / max(height, width))
        return tissue_mask(self.view_array(scale))[0]

    def tile_mask(self, tile_size: int, min_fraction: float = 0.0) -> torch.Tensor:
        """Bool ``(rows, cols)``: which ``tile_size`` tiles of the grid from (0, 0) contain tissue.

        ``rows = ceil(height / tile_size)``, ``cols = ceil(width / tile_size)`` -- the same grid the
        Zoom-In model cuts (zero-padded border tiles included). A tile counts as tissue when more
        than ``min_fraction`` of the tissue-mask pixels it touches are tissue. Uses the cache's
        ``coords`` directly when they were computed for this ``tile_size`` and fraction.
        """
        from zoomin.data.tissue import tile_fractions

        height, width = self.size
        rows, cols = -(-height // tile_size), -(-width // tile_size)
        cache = self._h5()
        if cache is not None and "coords" in cache:
            coords = cache["coords"]
            if (
                int(coords.attrs.get("tile_size", -1)) == tile_size
                and float(coords.attrs.get("min_tissue_fraction", -1.0)) == float(min_fraction)
            ):
                mask = torch.zeros((rows, cols), dtype=torch.bool)
                xy = np.asarray(coords[...], dtype=np.int64).reshape(-1, 2)
                if len(xy):
                    mask[torch.from_numpy(xy[:, 1] // tile_size), torch.from_numpy(xy[:, 0] // tile_size)] = True
                return mask
        fractions = tile_fractions(self.tissue_mask(), height, width, tile_size)
        return torch.from_numpy(fractions > min_fraction)
