"""What the slide builders share: placing a slide in the constructed folder, checking that it decodes,
the seeded train/val split of the slides, and finding a Camelyon16-layout slide's tumour annotation.

Used by :mod:`~zoomin.data.sources.camelyon16`, :mod:`~zoomin.data.sources.slide_folder` (slides in,
slides out) and :mod:`~zoomin.data.sources.needle_camelyon` (Camelyon16 slides in, crops out).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Literal

import numpy as np

from zoomin.data.slide_cache import slide_mpp
from zoomin.data.slide_masks import mask_from_image, mask_from_xml
from zoomin.data.slide_reader import SlideReader
from zoomin.data.sources import common
from zoomin.data.stratify import holdout_counts, stratified_split
from zoomin.data.tissue import tissue_mask
from zoomin.errors import InputFileError, UserError

log = logging.getLogger(__name__)

LinkMode = Literal["hardlink", "symlink", "copy"]
MaskMode = Literal["auto", "xml", "tif", "none"]  # where a slide's tumour mask comes from


def place_slide(source: Path, stage: Path, relative: str, link: LinkMode) -> str:
    """Put a slide into the constructed folder: hard link, symlink or copy (``link``).

    A hard link that fails (another file system) falls back to a symlink; slides are never copied
    unless asked, they are large.
    """
    target = stage / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    if link == "copy":
        return common.place_file(source, stage, relative)
    if link == "hardlink":
        try:
            os.link(source, target)
            return relative
        except OSError:
            log.debug("%s: cannot hard-link (other file system?); symlinking", source)
    if link not in ("hardlink", "symlink"):
        raise UserError(f"parameter 'link' must be hardlink, symlink or copy, got {link!r}")
    target.symlink_to(source.resolve())
    return relative


def check_slide(reader: SlideReader) -> float | None:
    """Open a slide and decode its smallest level (catches truncated files), check that it shows
    tissue (a blank or black slide is refused, naming the file); return its mpp."""
    slide = reader.slide
    level = slide.level_count - 1
    width, height = slide.level_dimensions[level]
    if width * height <= 1 << 24:
        pixels = reader.read(level, 0, 0, height, width)
        if not tissue_mask(pixels)[0].any():
            raise InputFileError(
                reader.path,
                f"shows no tissue at its smallest level ({width}x{height} px): blank glass, or not an H&E "
                "slide; is it the right file?",
            )
    else:  # a huge single level: decode one corner tile only (the cache step refuses it clearly)
        reader.read(level, 0, 0, min(height, 512), min(width, 512))
    return slide_mpp(reader)


def annotation_file(raw_dir: Path, name: str, masks: MaskMode = "auto") -> tuple[Literal["xml", "tif"], Path] | None:
    """Where slide ``name``'s tumour annotation is in a Camelyon16-layout folder, and its kind.

    ``annotations/<name>.xml`` (ASAP polygons) or ``masks/<name>_mask.tif`` (a mask slide), as
    ``masks`` allows (``auto``: the XML if both exist); None when there is none (or ``masks=none``).
    """
    xml = raw_dir / "annotations" / f"{name}.xml"
    tif = raw_dir / "masks" / f"{name}_mask.tif"
    if masks in ("xml", "auto") and xml.is_file():
        return "xml", xml
    if masks in ("tif", "auto") and tif.is_file():
        return "tif", tif
    return None


def slide_mask(
    name: str, raw_dir: Path, reader: SlideReader, masks: MaskMode, mask_downsample: float
) -> np.ndarray | None:
    """The tumour mask of Camelyon16-layout slide ``name`` at its mask level, or None without annotation."""
    found = annotation_file(raw_dir, name, masks)
    if found is None:
        return None
    kind, path = found
    if kind == "xml":
        return mask_from_xml(path, reader, mask_downsample)
    return mask_from_image(path, reader, mask_downsample)


def train_val_split(labels: dict[str, str], val_fraction: float, seed: int) -> dict[str, str]:
    """``{name: "train" | "val"}`` for ``{name: label}``: a seeded ``val_fraction`` of each class is ``val``.

    A class of two or more slides has at least one slide in each split (none in val when
    ``val_fraction`` is 0); the draw does not depend on the order of ``labels``.
    """
    names = sorted(labels)
    rng = np.random.default_rng(seed)
    shares = {"val": val_fraction, "train": 1.0 - val_fraction}
    return dict(zip(names, stratified_split([labels[name] for name in names], shares, rng, holdout_counts)))
