"""The one interface through which models see an image, and its in-memory implementation.

Models never build the full-resolution image themselves. They ask an :class:`ImageAccess` for

* ``view(scale)`` -- the whole image downscaled by ``scale`` (the stage-1 view, or ATS's view);
* ``region_view(top, left, size, scale)`` -- one square full-resolution region (a tile) downscaled
  by ``scale`` (the stage-2 view of a tile), zero-padded where it leaves the image;
* ``patches(centres, size)`` -- full-resolution ``size``x``size`` sub-tiles centred on the given
  full-resolution ``(y, x)`` coordinates, zero-padded at the borders.

All three return float32 tensors in [0, 1], channels first, on the CPU; the model moves them to
its device. Beyond them an image may know more, and says so through optional members whose
defaults answer for an image that does not (:class:`ImageAccess`):

* ``view_rows(scale, top, stop)`` -- a band of rows of a view, for inference that streams it
  (:mod:`zoomin.models.bounded_memory`); slides and HDF5-backed images read just those rows from
  their caches, other images slice ``view(scale)``; the view's shape is known without reading it
  (:func:`view_shape`);
* ``tile_mask(tile_size)`` -- which tiles hold tissue (whole slides); ``None``: not known;
* ``source`` -- the file the pixels come from (what identifies an image across epochs);
* ``mpp`` -- level-0 microns per pixel (slides that record it);
* ``view_array(scale)``, ``region_array(top, left, size, scale)``, ``patch_arrays(centres, size)``
  -- the same pixels as ``uint8`` arrays, channels last, before their conversion to float: the
  batched models read a whole batch through them (:mod:`zoomin.models.batching`) and convert it to
  a tensor once, instead of once per image, tile and patch; ``None``: the image has no such reader
  and is read through the tensor methods. Both must give the same pixels.

:class:`InMemoryImage` keeps the pixels as a NumPy ``uint8`` array (outside torch), so a
model that reads it never allocates a full-resolution tensor. :class:`DeviceTensorImage` keeps the
full image as a torch tensor on the model's device: that is how the published ATS code works, and
the memory benchmark uses it to measure ATS "as published". Slide-backed access (OpenSlide + HDF5)
lives in :mod:`zoomin.data.slide_access` and implements the same protocol.

The view geometry (:func:`scaled_length`, :func:`scale_key`) is shared with the torch-free slide
reader and cache builder, so this module imports torch only where a tensor is made: a slide-cache
job that needs the geometry does not pay for torch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    import torch


class ImageAccess(ABC):
    """What a model may ask of an image. ``size`` is ``(height, width)`` at full resolution.

    The first five members every image has; the rest are optional capabilities, and the defaults
    here are what an image without them answers (see the module docstring)."""

    @property
    @abstractmethod
    def size(self) -> tuple[int, int]: ...

    @property
    @abstractmethod
    def channels(self) -> int: ...

    @abstractmethod
    def view(self, scale: float) -> torch.Tensor: ...

    @abstractmethod
    def region_view(self, top: int, left: int, size: int, scale: float) -> torch.Tensor: ...

    @abstractmethod
    def patches(self, centres: torch.Tensor, size: int) -> torch.Tensor: ...

    def view_rows(self, scale: float, top: int, stop: int) -> torch.Tensor:
        """Rows ``[top, stop)`` of ``view(scale)`` (CxHxW float32); ``stop`` is clipped to the view."""
        return self.view(scale)[:, top:stop]

    def tile_mask(self, tile_size: int) -> torch.Tensor | None:
        """Bool ``(rows, cols)``: which ``tile_size`` tiles of the grid from (0, 0) hold tissue;
        ``None`` when the image does not know its tissue."""
        return None

    @property
    def source(self) -> Path | None:
        """The file the pixels come from (``None``: held in memory only)."""
        return None

    @property
    def mpp(self) -> float | None:
        """Level-0 microns per pixel (``None``: the image does not say)."""
        return None

    def view_array(self, scale: float) -> np.ndarray | None:
        """``view(scale)`` as HxWxC uint8; ``None``: no uint8 reader."""
        return None

    def region_array(self, top: int, left: int, size: int, scale: float) -> np.ndarray | None:
        """``region_view(...)`` as HxWxC uint8; ``None``: no uint8 reader."""
        return None

    def patch_arrays(self, centres, size: int) -> np.ndarray | None:
        """``patches(centres, size)`` as NxHxWxC uint8 (``centres``: any ``(n, 2)`` array-like);
        ``None``: no uint8 reader."""
        return None


def scaled_length(length: int, scale: float) -> int:
    """Side of a view of ``length`` full-resolution pixels at ``scale`` (at least 1 pixel)."""
    return max(1, int(round(length * scale)))


def view_shape(size: tuple[int, int], scale: float) -> tuple[int, int]:
    """``(height, width)`` of the view at ``scale`` of an image of ``size`` (every ImageAccess agrees)."""
    return scaled_length(size[0], scale), scaled_length(size[1], scale)


def scale_key(scale: float) -> str:
    """Name of the view at ``scale`` in an HDF5 cache: ``s0.1``, ``s0.25``, ``s1``, ``s0.03125``."""
    return f"s{float(scale):g}"


def as_hwc_uint8(pixels: np.ndarray) -> np.ndarray:
    """Return ``pixels`` as a contiguous HxWxC uint8 array with 3 channels (gray and RGBA converted)."""
    array = np.asarray(pixels)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3:
        raise ValueError(f"expected an HxW or HxWxC image, got shape {array.shape}")
    if array.dtype != np.uint8:
        if np.issubdtype(array.dtype, np.floating) and array.size and array.max() <= 1.0:
            array = array * 255.0
        array = np.clip(array, 0, 255).astype(np.uint8)
    channels = array.shape[2]
    if channels == 1:
        array = np.repeat(array, 3, axis=2)
    elif channels == 4:
        array = array[:, :, :3]
    elif channels != 3:
        raise ValueError(f"expected 1, 3 or 4 channels, got {channels}")
    return np.ascontiguousarray(array)


def to_chw_float(pixels: np.ndarray) -> torch.Tensor:
    """HxWxC uint8 -> CxHxW float32 tensor in [0, 1]."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1).float().div_(255.0)


def resize_uint8(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """Area-style downscaling of an HxWxC uint8 array with Pillow (box filter; no torch tensors)."""
    if pixels.shape[0] == height and pixels.shape[1] == width:
        return pixels
    image = Image.fromarray(pixels)
    return np.array(image.resize((width, height), Image.Resampling.BOX))


def crop_padded(pixels: np.ndarray, top: int, left: int, height: int, width: int) -> np.ndarray:
    """Crop ``pixels[top:top+height, left:left+width]``, zero-padding what lies outside."""
    out = np.zeros((height, width, pixels.shape[2]), dtype=pixels.dtype)
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + height, pixels.shape[0]), min(left + width, pixels.shape[1])
    if y1 > y0 and x1 > x0:
        out[y0 - top : y1 - top, x0 - left : x1 - left] = pixels[y0:y1, x0:x1]
    return out


def patch_corner(centre: float, size: int) -> int:
    """Top/left full-resolution coordinate of a ``size`` patch centred on ``centre``."""
    return int(np.floor(centre - size / 2.0 + 0.5))


class InMemoryImage(ImageAccess):
    """An image held in host memory as ``uint8``; views are computed with Pillow and cached.

    ``views`` may pre-supply views by scale (e.g. read from an HDF5 cache), so the full image is
    only touched for regions and patches.
    """

    def __init__(self, pixels: np.ndarray, views: dict[float, np.ndarray] | None = None):
        self._pixels = as_hwc_uint8(pixels)
        self._views: dict[float, np.ndarray] = {}
        # Downscaled regions, kept like the views: training reads the same tiles' stage-2 views
        # every epoch, and together they are at most the image at that scale.
        self._regions: dict[tuple[int, int, int, float], np.ndarray] = {}
        for scale, view in (views or {}).items():
            self._views[float(scale)] = as_hwc_uint8(view)

    @property
    def size(self) -> tuple[int, int]:
        return int(self._pixels.shape[0]), int(self._pixels.shape[1])

    @property
    def channels(self) -> int:
        return int(self._pixels.shape[2])

    @property
    def pixels(self) -> np.ndarray:
        """The full-resolution uint8 array (for plotting and baselines that need the whole image)."""
        return self._pixels

    def view_array(self, scale: float) -> np.ndarray:
        """The view at ``scale`` as HxWx3 uint8 (computed once, then kept)."""
        key = float(scale)
        if key not in self._views:
            height, width = self.size
            self._views[key] = resize_uint8(
                self._pixels, scaled_length(height, scale), scaled_length(width, scale)
            )
        return self._views[key]

    def view(self, scale: float) -> torch.Tensor:
        return to_chw_float(self.view_array(scale))

    def view_rows(self, scale: float, top: int, stop: int) -> torch.Tensor:
        return to_chw_float(self.view_array(scale)[top:stop])

    def region_array(self, top: int, left: int, size: int, scale: float) -> np.ndarray:
        """The region of :meth:`region_view` as HxWx3 uint8 (computed once, then kept)."""
        key = (top, left, size, float(scale))
        if key not in self._regions:
            side = scaled_length(size, scale)
            self._regions[key] = resize_uint8(crop_padded(self._pixels, top, left, size, size), side, side)
        return self._regions[key]

    def region_view(self, top: int, left: int, size: int, scale: float) -> torch.Tensor:
        return to_chw_float(self.region_array(top, left, size, scale))

    def patch_arrays(self, centres, size: int) -> np.ndarray:
        """The patches of :meth:`patches` as NxHxWx3 uint8 (``centres``: any ``(n, 2)`` array-like)."""
        if hasattr(centres, "detach"):  # a tensor, perhaps on a GPU
            centres = centres.detach().cpu()
        rows = np.asarray(centres, dtype=np.float64).reshape(-1, 2).tolist()
        if not rows:
            return np.zeros((0, size, size, self.channels), dtype=np.uint8)
        return np.stack(
            [crop_padded(self._pixels, patch_corner(cy, size), patch_corner(cx, size), size, size) for cy, cx in rows]
        )

    def patches(self, centres: torch.Tensor, size: int) -> torch.Tensor:
        import torch

        return torch.from_numpy(self.patch_arrays(centres, size)).permute(0, 3, 1, 2).float().div_(255.0)


class CountingImage(ImageAccess):
    """An :class:`ImageAccess` that passes every request on to ``image`` and counts the values of
    what it returned (``values``; float32 each): how much of the image a model instantiated, the
    quantity the paper's memory analysis counts. Other attributes are those of ``image``."""

    def __init__(self, image: ImageAccess):
        self.image = image
        self.values = 0

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size

    @property
    def channels(self) -> int:
        return self.image.channels

    def view(self, scale: float) -> torch.Tensor:
        return self._counted(self.image.view(scale))

    def region_view(self, top: int, left: int, size: int, scale: float) -> torch.Tensor:
        return self._counted(self.image.region_view(top, left, size, scale))

    def patches(self, centres: torch.Tensor, size: int) -> torch.Tensor:
        return self._counted(self.image.patches(centres, size))

    def view_rows(self, scale: float, top: int, stop: int) -> torch.Tensor:
        return self._counted(self.image.view_rows(scale, top, stop))

    def tile_mask(self, tile_size: int) -> torch.Tensor | None:
        return self.image.tile_mask(tile_size)

    @property
    def source(self) -> Path | None:
        return self.image.source

    @property
    def mpp(self) -> float | None:
        return self.image.mpp

    def view_array(self, scale: float) -> np.ndarray | None:
        return self._counted_array(self.image.view_array(scale))

    def region_array(self, top: int, left: int, size: int, scale: float) -> np.ndarray | None:
        return self._counted_array(self.image.region_array(top, left, size, scale))

    def patch_arrays(self, centres, size: int) -> np.ndarray | None:
        return self._counted_array(self.image.patch_arrays(centres, size))

    def _counted_array(self, array: np.ndarray | None) -> np.ndarray | None:
        """The uint8 readers hand out the same pixels as the tensor readers: counted the same way."""
        if array is not None:
            self.values += int(array.size)
        return array

    def _counted(self, tensor: torch.Tensor) -> torch.Tensor:
        self.values += int(tensor.numel())
        return tensor

    def __getattr__(self, name: str):  # noqa: ANN204 - whatever the wrapped image has
        return getattr(self.image, name)


class DeviceTensorImage(ImageAccess):
    """The whole image as one float tensor on a device, the way the published ATS code holds it.

    Used to measure "ATS as published"; everything is cut from the device tensor.
    """

    def __init__(self, pixels: np.ndarray | torch.Tensor, device: torch.device | str = "cpu"):
        import torch

        if isinstance(pixels, torch.Tensor):
            tensor = pixels.float()
        else:
            tensor = to_chw_float(as_hwc_uint8(pixels))
        self._tensor = tensor.to(device)

    @property
    def size(self) -> tuple[int, int]:
        return int(self._tensor.shape[1]), int(self._tensor.shape[2])

    @property
    def channels(self) -> int:
        return int(self._tensor.shape[0])

    def view(self, scale: float) -> torch.Tensor:
        import torch

        height, width = self.size
        return torch.nn.functional.interpolate(
            self._tensor[None],
            size=(scaled_length(height, scale), scaled_length(width, scale)),
            mode="area",
        )[0]

    def region_view(self, top: int, left: int, size: int, scale: float) -> torch.Tensor:
        import torch

        region = self._crop(top, left, size)
        side = scaled_length(size, scale)
        return torch.nn.functional.interpolate(region[None], size=(side, side), mode="area")[0]

    def patches(self, centres: torch.Tensor, size: int) -> torch.Tensor:
        import torch

        centres = torch.as_tensor(centres).reshape(-1, 2).tolist()
        if not centres:
            return self._tensor.new_zeros((0, self.channels, size, size))
        return torch.stack(
            [self._crop(patch_corner(cy, size), patch_corner(cx, size), size) for cy, cx in centres]
        )

    def _crop(self, top: int, left: int, size: int) -> torch.Tensor:
        height, width = self.size
        out = self._tensor.new_zeros((self.channels, size, size))
        y0, x0 = max(top, 0), max(left, 0)
        y1, x1 = min(top + size, height), min(left + size, width)
        if y1 > y0 and x1 > x0:
            out[:, y0 - top : y1 - top, x0 - left : x1 - left] = self._tensor[:, y0:y1, x0:x1]
        return out
