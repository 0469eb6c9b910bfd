"""Per-slide HDF5 cache (docs/formats.md section 3): low-resolution views, tissue mask, tissue tiles.

CLAM-like layout of ``<image_id>.h5``::

    attrs     format_version, source (slide path), level, downsample (the level the tissue mask was
              read from), mpp (level 0 microns per pixel, NaN when the slide does not say),
              height, width (level 0), scales (JSON list), tissue_threshold (Otsu on saturation)
    s<scale>      uint8 (h, w, 3) view at that scale; attrs scale, level, downsample (level it was
                  read from)
    tissue_mask   bool (h, w) at the tissue level; attrs scale, level, downsample, threshold
    coords        int64 (n, 2) top-left level-0 (x, y) of the tiles with tissue (CLAM order);
                  attrs tile_size, min_tissue_fraction, order = "xy"
    mask/s<scale> uint8 (h, w) object-pixel fraction * 255 at each view scale, only when the
                  slide has a mask (so a view cache can link ``/masks/<image_id>`` to ``/mask``)

Every view is rendered from the best pyramid level for its scale (coarsest level whose downsample
is <= 1/scale) in blocks, straight into a chunked, gzip-compressed dataset, so peak memory is a
few blocks plus one view, whatever the slide's size. A slide whose best level is too large to
decode (a non-pyramidal TIFF: only level 0) is refused with an :class:`InputFileError`, as are a
truncated or unreadable file and a slide that shows no tissue. The file is written to a temporary
name and renamed when complete.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
from PIL import Image
from tqdm import tqdm

from zoomin.atomic import atomic_path
from zoomin.data.slide_reader import (
    BLOCK,
    DEFAULT_MAX_READ_PIXELS,
    SlideReader,
    best_level,
)
from zoomin.data.tissue import tile_fractions, tissue_mask
from zoomin.errors import InputFileError
from zoomin.image_access import scale_key, scaled_length

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
DEFAULT_TISSUE_DOWNSAMPLE = 32.0
CHUNK = 256


def slide_mpp(reader: SlideReader) -> float | None:
    """Level-0 microns per pixel from ``openslide.mpp-x`` (``None`` when absent)."""
    value = reader.slide.properties.get("openslide.mpp-x")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _write_view(
    reader: SlideReader, group: h5py.Group, name: str, scale: float, compression: int, block: int
) -> None:
    """Render the view at ``scale`` block by block into the chunked dataset ``name``."""
    height, width = reader.size
    out_h, out_w = scaled_length(height, scale), scaled_length(width, scale)
    level = best_level(reader, 1.0 / scale)
    dataset = group.create_dataset(
        name,
        shape=(out_h, out_w, 3),
        dtype=np.uint8,
        chunks=(min(CHUNK, out_h), min(CHUNK, out_w), 3),
        compression="gzip",
        compression_opts=compression,
        shuffle=False,
    )
    dataset.attrs["scale"] = float(scale)
    dataset.attrs["level"] = level
    dataset.attrs["downsample"] = float(reader.level_downsamples[level])
    per_y = height / out_h
    bands = range(0, out_h, block)
    for oy0 in tqdm(bands, desc=f"{reader.path.name} {name}", unit="band", leave=False, disable=len(bands) < 4):
        oy1 = min(oy0 + block, out_h)
        band = reader.render(oy0 * per_y, 0, (oy1 - oy0) * per_y, width, oy1 - oy0, out_w, block)
        dataset[oy0:oy1] = band


def _write_mask_views(
    h5: h5py.File, mask_path: Path, scales: Sequence[float], height: int, width: int, compression: int
) -> None:
    """Group ``mask`` with the object fraction (x255) of the slide's mask at every view scale."""
    from zoomin.data.slide_masks import read_mask

    mask = read_mask(mask_path).astype(np.float32)
    group = h5.create_group("mask")
    group.attrs["source"] = str(mask_path.resolve())
    image = Image.fromarray(mask)  # float32 -> mode "F"
    for scale in sorted({float(s) for s in scales}):
        out_h, out_w = scaled_length(height, scale), scaled_length(width, scale)
        fraction = np.asarray(image.resize((out_w, out_h), Image.Resampling.BOX))
        group.create_dataset(
            scale_key(scale),
            data=np.clip(np.round(fraction * 255.0), 0, 255).astype(np.uint8),
            chunks=True,
            compression="gzip",
            compression_opts=compression,
        )


def build_slide_cache(
    slide_path: str | Path,
    out_path: str | Path,
    scales: Sequence[float],
    tile_size: int,
    *,
    tissue_downsample: float = DEFAULT_TISSUE_DOWNSAMPLE,
    min_tissue_fraction: float = 0.0,
    max_read_pixels: int = DEFAULT_MAX_READ_PIXELS,
    compression: int = 1,
    block: int = BLOCK,
    mask_path: str | Path | None = None,
) -> Path:
    """Build the HDF5 cache of one slide and return ``out_path``.

    ``scales`` are the view scales the configured methods need (e.g. Zoom-In's s1); ``tile_size``
    is the model's tile side in level-0 pixels, for ``coords``. The tissue mask is computed on a
    view at ``1/tissue_downsample`` (Otsu on HSV saturation); a tile is listed in ``coords`` when
    more than ``min_tissue_fraction`` of the mask pixels it touches are tissue. ``mask_path`` is
    the slide's mask in the constructed format (:mod:`zoomin.data.slide_masks`), if it has one.
    """
    slide_path, out_path = Path(slide_path), Path(out_path)
    if not scales:
        raise ValueError("build_slide_cache needs at least one scale")
    for scale in scales:
        if not 0 < float(scale) <= 1:
            raise ValueError(f"scales must lie in (0, 1], got {scale}")
    if tile_size < 1:
        raise ValueError(f"tile_size must be >= 1, got {tile_size}")
    started = time.perf_counter()
    reader = SlideReader(slide_path, max_read_pixels)
    try:
        height, width = reader.size
        if reader.slide.level_count == 1 and height * width > max_read_pixels:
            raise InputFileError(
                slide_path,
                f"not pyramidal: a single level of {width}x{height} pixels; building its views "
                f"would read level 0 whole (more than {max_read_pixels:.3g} pixels). Convert it to a "
                "tiled pyramidal TIFF, e.g. `vips tiffsave in.tif out.tif --tile --pyramid --compression jpeg`",
            )
        tissue_scale = min(1.0 / tissue_downsample, 1.0)
        tissue_level = best_level(reader, 1.0 / tissue_scale)
        with atomic_path(out_path) as tmp:
            with h5py.File(tmp, "w") as h5:
                h5.attrs["format_version"] = FORMAT_VERSION
                h5.attrs["source"] = str(slide_path.resolve())
                h5.attrs["height"], h5.attrs["width"] = height, width
                mpp = slide_mpp(reader)
                h5.attrs["mpp"] = float("nan") if mpp is None else mpp
                h5.attrs["scales"] = json.dumps([float(s) for s in scales])
                h5.attrs["level"] = tissue_level
                h5.attrs["downsample"] = float(reader.level_downsamples[tissue_level])
                for scale in sorted({float(s) for s in scales}):
                    _write_view(reader, h5, scale_key(scale), scale, compression, block)
                cached = scale_key(tissue_scale)
                low = h5[cached][...] if cached in h5 else reader.render_view(tissue_scale, block)
                mask, threshold = tissue_mask(low)
                del low
                if not mask.any():
                    raise InputFileError(
                        slide_path,
                        f"shows no tissue at 1/{tissue_downsample:g} (saturation threshold {threshold:g}): "
                        "blank glass, or not an H&E slide; no cache written",
                    )
                h5.attrs["tissue_threshold"] = threshold
                mask_set = h5.create_dataset(
                    "tissue_mask", data=mask, chunks=True, compression="gzip", compression_opts=compression
                )
                mask_set.attrs.update(
                    scale=tissue_scale,
                    level=tissue_level,
                    downsample=float(reader.level_downsamples[tissue_level]),
                    threshold=threshold,
                )
                fractions = tile_fractions(mask, height, width, tile_size)
                rows, cols = np.nonzero(fractions > min_tissue_fraction)
                coords = np.stack([cols * tile_size, rows * tile_size], axis=1).astype(np.int64)
                coords_set = h5.create_dataset("coords", data=coords.reshape(-1, 2))
                coords_set.attrs.update(
                    tile_size=int(tile_size), min_tissue_fraction=float(min_tissue_fraction), order="xy"
                )
                if mask_path is not None:
                    _write_mask_views(h5, Path(mask_path), scales, height, width, compression)
    finally:
        reader.close()
    total = sum(reader.read_stats.values())
    log.info(
        "%s: cache %s (%d tissue tiles of %d, %.3g pixels decoded, %.1f s)",
        slide_path.name,
        out_path,
        len(coords),
        math.ceil(height / tile_size) * math.ceil(width / tile_size),
        total,
        time.perf_counter() - started,
    )
    return out_path


def build_constructed_slide_cache(
    constructed_dir: str | Path,
    image_id: str,
    out_path: str | Path,
    scales: Sequence[float],
    tile_size: int,
    **options: object,
) -> Path:
    """The cache of slide ``image_id`` of a constructed ``kind: slide`` dataset (with its mask, if any).

    What the workflow's ``slide_cache`` rule runs, once per slide: the slide and mask paths come from
    ``labels.csv``; ``options`` go to :func:`build_slide_cache`.
    """
    from zoomin.data.constructed import read_constructed

    dataset = read_constructed(constructed_dir)
    if dataset.kind != "slide":
        raise InputFileError(dataset.root / "dataset.json", f"kind {dataset.kind!r}: slide caches are for kind 'slide'")
    try:
        record = dataset.record(image_id)
    except KeyError:
        raise InputFileError(dataset.root / "labels.csv", f"has no slide {image_id!r}") from None
    return build_slide_cache(
        dataset.image_path(record),
        out_path,
        scales,
        tile_size,
        mask_path=dataset.mask_path(record),
        **options,  # type: ignore[arg-type]
    )
