"""Reading whole-slide images through OpenSlide without torch: open, pick levels, render regions.

:class:`SlideReader` is what both the cache builder (:mod:`zoomin.data.slide_cache`) and the
model-facing :class:`zoomin.data.slide_access.SlideImage` read slides with. It turns every
OpenSlide failure into an :class:`~zoomin.errors.InputFileError` naming the file, counts the pixels
decoded per level (``read_stats``), renders any level-0 box at any output size from the best
pyramid level in bounded blocks, and refuses reads that would decode more than
``max_read_pixels`` of one level (a non-pyramidal slide). It imports no torch, so a cache-building
job stays small.

:meth:`SlideReader.read_many` reads many independent regions (a model's patches) with a few
threads: OpenSlide's C library may be called from several threads on one handle and decodes
without holding Python's GIL, so the reads overlap; the regions come back in the order asked, the
same pixels as read one by one.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import openslide
from PIL import Image

from zoomin.errors import InputFileError
from zoomin.image_access import scaled_length

log = logging.getLogger(__name__)


DEFAULT_MAX_READ_PIXELS = 1 << 28  # 268 M pixels of one level (~1 GB RGBA if it were decoded whole)
BLOCK = 1024  # output pixels per side of one read block when rendering a view


def open_slide(path: str | Path) -> openslide.OpenSlide:
    """Open a slide with OpenSlide, turning every failure into an :class:`InputFileError`."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "slide file not found")
    try:
        return openslide.OpenSlide(str(path))
    except openslide.OpenSlideUnsupportedFormatError:
        raise InputFileError(path, "not a slide format OpenSlide can read") from None
    except (openslide.OpenSlideError, OSError, ValueError) as error:
        raise InputFileError(path, f"cannot open slide (corrupt or truncated?): {error}") from None


def best_level(slide: openslide.OpenSlide | SlideReader, downsample: float) -> int:
    """The coarsest level whose downsample is <= ``downsample`` (level 0 if none is)."""
    chosen = 0
    for level, level_downsample in enumerate(slide.level_downsamples):
        if level_downsample <= downsample * (1 + 1e-6):
            chosen = level
    return chosen


class SlideReader:
    """Reads RGB regions of one slide through OpenSlide, converting errors and counting pixels."""

    def __init__(self, path: str | Path, max_read_pixels: int = DEFAULT_MAX_READ_PIXELS):
        self.path = Path(path)
        self.max_read_pixels = int(max_read_pixels)
        self.read_stats: Counter[int] = Counter()
        self._slide: openslide.OpenSlide | None = None

    @property
    def slide(self) -> openslide.OpenSlide:
        if self._slide is None:
            self._slide = open_slide(self.path)
        return self._slide

    def close(self) -> None:
        if self._slide is not None:
            self._slide.close()
            self._slide = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_slide"] = None
        return state

    # OpenSlide's level properties ask the C library and build new tuples on every access; a
    # training step reads a region per sampled patch, so the reader asks once.
    @cached_property
    def level_dimensions(self) -> tuple[tuple[int, int], ...]:
        """(width, height) of each pyramid level, as OpenSlide gives them."""
        return tuple(self.slide.level_dimensions)

    @cached_property
    def level_downsamples(self) -> tuple[float, ...]:
        """Level-0 pixels per level pixel of each pyramid level, as OpenSlide gives them."""
        return tuple(self.slide.level_downsamples)

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of level 0."""
        width, height = self.level_dimensions[0]
        return int(height), int(width)

    def level_scale(self, level: int) -> tuple[float, float]:
        """Level-0 pixels per level pixel along (y, x), from the actual level sizes."""
        width0, height0 = self.level_dimensions[0]
        width, height = self.level_dimensions[level]
        return height0 / height, width0 / width

    def read(self, level: int, top: int, left: int, height: int, width: int) -> np.ndarray:
        """HxWx3 uint8 pixels of ``level`` starting at level pixel (top, left); outside = 0."""
        try:
            pixels = self._region(level, top, left, height, width)
        except InputFileError:
            self.close()  # an OpenSlide handle is unusable after an error
            raise
        self._count(level, height, width)
        return pixels

    def read_many(
        self, level: int, boxes: Sequence[tuple[int, int, int, int]], workers: int = 1
    ) -> list[np.ndarray]:
        """:meth:`read` of every ``(top, left, height, width)`` box of ``level``, in order; with
        ``workers`` > 1, by that many threads at once (1: one after the other)."""
        workers = min(int(workers), len(boxes))
        if workers <= 1:
            return [self.read(level, *box) for box in boxes]
        _ = self.slide, self.level_downsamples, self.level_dimensions  # opened and asked before threads share them

        def read_share(first: int) -> list[np.ndarray]:  # every workers-th box: one task per thread
            return [self._region(level, *box) for box in boxes[first::workers]]

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="slide-read") as pool:
            futures = [pool.submit(read_share, first) for first in range(workers)]
        # Every thread has ended here, so an error closes a handle that no thread still uses.
        error = next((future.exception() for future in futures if future.exception() is not None), None)
        if error is not None:
            self.close()
            raise error
        pixels: list[np.ndarray] = [np.empty(0)] * len(boxes)
        for first, future in enumerate(futures):
            pixels[first::workers] = future.result()
        for _, _, height, width in boxes:  # counted here: a Counter is not safe to update from threads
            self._count(level, height, width)
        return pixels

    def _count(self, level: int, height: int, width: int) -> None:
        if height > 0 and width > 0:
            self.read_stats[level] += int(height) * int(width)

    def _region(self, level: int, top: int, left: int, height: int, width: int) -> np.ndarray:
        """The pixels of :meth:`read`, without counting them or closing the handle on an error."""
        if height <= 0 or width <= 0:
            return np.zeros((max(height, 0), max(width, 0), 3), dtype=np.uint8)
        downsample = self.level_downsamples[level]
        location = (int(round(left * downsample)), int(round(top * downsample)))
        try:
            region = self.slide.read_region(location, level, (int(width), int(height)))
        except (openslide.OpenSlideError, OSError, ValueError) as error:
            raise InputFileError(
                self.path, f"cannot read level {level} at ({top}, {left}) (corrupt or truncated?): {error}"
            ) from None
        level_width, level_height = self.level_dimensions[level]
        if top >= 0 and left >= 0 and top + height <= level_height and left + width <= level_width:
            return np.array(region.convert("RGB"))  # inside the slide: opaque
        rgba = np.asarray(region)
        keep = rgba[:, :, 3:] > 0  # outside the slide OpenSlide returns transparent pixels
        return np.ascontiguousarray(np.where(keep, rgba[:, :, :3], 0).astype(np.uint8))

    def render(
        self,
        top: float,
        left: float,
        height: float,
        width: float,
        out_height: int,
        out_width: int,
        block: int = BLOCK,
    ) -> np.ndarray:
        """The level-0 box ``[top, top+height) x [left, left+width)`` resized to out_height x out_width.

        Reads the best pyramid level for the requested downscaling in blocks of ``block`` output
        pixels (so memory stays bounded by the output, not by the level), resizing each block with
        a box filter over exactly its share of the level (no seams). Raises
        :class:`InputFileError` if the region at that level exceeds ``max_read_pixels``.
        """
        per_y, per_x = height / out_height, width / out_width  # level-0 px per output px
        level = best_level(self, min(per_y, per_x))
        scale_y, scale_x = self.level_scale(level)
        needed = (height / scale_y) * (width / scale_x)
        if needed > self.max_read_pixels:
            levels = ", ".join(f"{w}x{h}" for w, h in self.level_dimensions)
            raise InputFileError(
                self.path,
                f"rendering a {out_width}x{out_height} view would decode {needed:.3g} pixels of "
                f"level {level} (limit {self.max_read_pixels:.3g}); the slide's levels are [{levels}]. "
                "Is it pyramidal? Convert it to a tiled pyramidal TIFF, e.g. "
                "`vips tiffsave in.tif out.tif --tile --pyramid --compression jpeg`",
            )
        out = np.zeros((out_height, out_width, 3), dtype=np.uint8)
        for oy0 in range(0, out_height, block):
            oy1 = min(oy0 + block, out_height)
            ly0, ly1 = (top + oy0 * per_y) / scale_y, (top + oy1 * per_y) / scale_y
            iy0, iy1 = math.floor(ly0 + 1e-9), math.ceil(ly1 - 1e-9)
            for ox0 in range(0, out_width, block):
                ox1 = min(ox0 + block, out_width)
                lx0, lx1 = (left + ox0 * per_x) / scale_x, (left + ox1 * per_x) / scale_x
                ix0, ix1 = math.floor(lx0 + 1e-9), math.ceil(lx1 - 1e-9)
                pixels = self.read(level, iy0, ix0, max(iy1 - iy0, 1), max(ix1 - ix0, 1))
                box = (lx0 - ix0, ly0 - iy0, lx1 - ix0, ly1 - iy0)
                size = (ox1 - ox0, oy1 - oy0)
                if size == (pixels.shape[1], pixels.shape[0]) and box == (0, 0, size[0], size[1]):
                    out[oy0:oy1, ox0:ox1] = pixels
                else:
                    resized = Image.fromarray(pixels).resize(size, Image.Resampling.BOX, box=box)
                    out[oy0:oy1, ox0:ox1] = np.asarray(resized)
        return out

    def render_view(self, scale: float, block: int = BLOCK) -> np.ndarray:
        """The whole slide downscaled by ``scale`` (``round(side * scale)`` pixels per side)."""
        height, width = self.size
        return self.render(
            0, 0, height, width, scaled_length(height, scale), scaled_length(width, scale), block
        )
