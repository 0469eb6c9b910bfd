"""Tumour masks of whole-slide images in the constructed format (docs/formats.md section 1).

A slide's mask is a single-channel uint8 TIFF (0 / 255, tiled, deflate) the size of one of the
slide's pyramid levels -- the level closest to (not coarser than) ``mask_downsample`` -- so that a
mask of a 100,000-pixel-wide slide stays a few tens of megabytes. Its downsample is implied by its
size (``slide side / mask side``). Masks are made from ASAP XML polygons (:mod:`zoomin.data.asap_xml`)
or converted from a mask image (a Camelyon ``*_mask.tif`` pyramid at level-0 size, or any image
whose size is a multiple/fraction of the slide's), and :func:`read_mask` reads them back.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from zoomin.atomic import atomic_path
from zoomin.data.asap_xml import (
    EXCLUDED_GROUPS,
    TUMOUR_GROUPS,
    check_inside,
    rasterise,
    read_asap_xml,
)
from zoomin.data.slide_reader import DEFAULT_MAX_READ_PIXELS, SlideReader, best_level
from zoomin.errors import InputFileError

log = logging.getLogger(__name__)

DEFAULT_MASK_DOWNSAMPLE = 16.0


def mask_shape(reader: SlideReader, mask_downsample: float) -> tuple[int, int]:
    """(height, width) of the pyramid level a mask at ``mask_downsample`` is stored at."""
    level = best_level(reader, mask_downsample)
    width, height = reader.level_dimensions[level]
    return int(height), int(width)


def write_mask_tiff(path: str | Path, mask: np.ndarray) -> Path:
    """Write a boolean mask as a tiled single-channel uint8 TIFF (0/255), atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tifffile.imwrite(
            tmp,
            np.where(mask, 255, 0).astype(np.uint8),
            tile=(256, 256),
            compression="zlib",
            photometric="minisblack",
            metadata=None,
        )
    return path


def read_mask(path: str | Path, max_pixels: int = DEFAULT_MAX_READ_PIXELS) -> np.ndarray:
    """A mask written by :func:`write_mask_tiff` (or a PNG) as a boolean array (non-zero = object)."""
    path = Path(path)
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            with tifffile.TiffFile(path) as tif:
                page = tif.pages[0]
                if int(np.prod(page.shape[:2])) > max_pixels:
                    raise InputFileError(path, f"mask of {page.shape} is too large to read whole")
                array = page.asarray()
        else:
            with Image.open(path) as image:
                array = np.asarray(image)
    except InputFileError:
        raise
    except Exception as error:  # tifffile/Pillow raise many types for corrupt files
        raise InputFileError(path, f"cannot read mask ({error})") from None
    if array.ndim == 3:
        array = array.max(axis=2)
    return array > 0


def mask_from_xml(
    xml_path: str | Path,
    reader: SlideReader,
    mask_downsample: float = DEFAULT_MASK_DOWNSAMPLE,
    tumour_groups: Sequence[str] = TUMOUR_GROUPS,
    excluded_groups: Sequence[str] = EXCLUDED_GROUPS,
) -> np.ndarray:
    """Rasterise an ASAP XML file at the slide's mask level (polygons checked against the slide)."""
    polygons = read_asap_xml(xml_path, tumour_groups, excluded_groups)
    height0, width0 = reader.size
    check_inside(xml_path, polygons, width0, height0)
    height, width = mask_shape(reader, mask_downsample)
    return rasterise(polygons, height, width, downsample=(height0 / height, width0 / width))


def mask_from_image(
    mask_path: str | Path,
    reader: SlideReader,
    mask_downsample: float = DEFAULT_MASK_DOWNSAMPLE,
) -> np.ndarray:
    """Convert a mask image (any non-zero = object) to the slide's mask level.

    A pyramidal mask (e.g. Camelyon's ``*_mask.tif``, level 0 the size of the slide) is read
    through OpenSlide at the best level, never whole at level 0; a plain image is read whole.
    Either is resized (nearest) to the mask level and must have the slide's aspect ratio.
    """
    mask_path = Path(mask_path)
    height0, width0 = reader.size
    height, width = mask_shape(reader, mask_downsample)
    mask_reader = SlideReader(mask_path)
    try:
        mh0, mw0 = mask_reader.size
        if abs(mh0 / mw0 - height0 / width0) > 0.02 * height0 / width0:
            raise InputFileError(
                mask_path, f"mask is {mw0}x{mh0}, which does not match the slide's {width0}x{height0} shape"
            )
        pixels = mask_reader.render(0, 0, mh0, mw0, height, width).max(axis=2)
        return pixels > 0
    except InputFileError as error:
        if "does not match" in error.problem:
            raise
        log.debug("%s: not readable through OpenSlide (%s); reading it whole", mask_path, error.problem)
    finally:
        mask_reader.close()
    mask = read_mask(mask_path)
    mh0, mw0 = mask.shape
    if abs(mh0 / mw0 - height0 / width0) > 0.02 * height0 / width0:
        raise InputFileError(
            mask_path, f"mask is {mw0}x{mh0}, which does not match the slide's {width0}x{height0} shape"
        )
    if mask.shape != (height, width):
        mask = np.asarray(
            Image.fromarray(mask.astype(np.uint8) * 255).resize((width, height), Image.Resampling.NEAREST)
        ) > 0
    return mask
