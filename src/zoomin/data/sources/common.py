"""Helpers shared by the builders: opening real-dataset images, file placement, ids, masks, metadata."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from zoomin.atomic import write_png
from zoomin.data.constructed import write_constructed
from zoomin.errors import InputFileError

log = logging.getLogger(__name__)


@contextlib.contextmanager
def open_image(path: str | Path) -> Iterator[Image.Image]:
    """``Image.open(path)`` without Pillow's decompression-bomb limit, for real-dataset files.

    Real datasets hold large images on purpose (fMoW has images of > 100 Mpixel). The limit is
    lifted only while the file is open, so images opened anywhere else keep Pillow's protection.
    """
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with Image.open(path) as image:
            yield image
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def safe_id(text: str) -> str:
    """``text`` turned into a valid ``image_id`` (``^[A-Za-z0-9_.-]+$``)."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")
    if not cleaned:
        raise ValueError(f"cannot make an image id from {text!r}")
    return cleaned


def check_image(path: str | Path) -> tuple[int, int]:
    """Decode ``path`` fully and return its ``(height, width)``; a file that fails names itself."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "image file not found")
    try:
        with open_image(path) as image:
            image.load()
            return image.height, image.width
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise InputFileError(path, f"cannot be decoded as an image ({error})") from None


def image_size(path: str | Path) -> tuple[int, int]:
    """``(height, width)`` from the image header, without decoding the pixels."""
    path = Path(path)
    try:
        with open_image(path) as image:
            return image.height, image.width
    except (OSError, SyntaxError, ValueError) as error:
        raise InputFileError(path, f"cannot be read as an image ({error})") from None


def place_file(source: str | Path, out_dir: str | Path, relative: str) -> str:
    """Put ``source`` at ``out_dir/relative`` (hard link if possible, else copy); return ``relative``.

    The copy goes to a temporary name first, so a crash never leaves a truncated file behind.
    """
    source, target = Path(source), Path(out_dir) / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)
    return relative


def write_box_mask(
    out_dir: str | Path,
    relative: str,
    size: tuple[int, int],
    boxes: Iterable[tuple[float, float, float, float]],
) -> str:
    """Write a single-channel PNG of ``size`` (h, w) with the ``(x0, y0, x1, y1)`` boxes set to 255."""
    height, width = size
    mask = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(mask)
    for x0, y0, x1, y1 in boxes:
        draw.rectangle([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)], fill=255)
    write_png(Path(out_dir) / relative, mask)
    return relative


def write_point_mask(
    out_dir: str | Path, relative: str, size: tuple[int, int], points: np.ndarray, radius: float
) -> str:
    """Write a single-channel PNG of ``size`` with a disc of ``radius`` around each ``(x, y)`` point."""
    height, width = size
    mask = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(mask)
    for x, y in np.asarray(points, dtype=float).reshape(-1, 2):
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=255)
    write_png(Path(out_dir) / relative, mask)
    return relative


def save_constructed(
    out_dir: str | Path,
    name: str,
    classes: Sequence[str],
    records: list[dict[str, Any]],
    source: str,
    seed: int | None = None,
    kind: str = "image",
    mpp: float | None = None,
) -> None:
    """Log what was built, then write labels.csv + dataset.json (through :mod:`zoomin.data.constructed`).

    Builders place their files in a :func:`zoomin.data.constructed.staged_folder` and call this last.
    """
    counts: dict[tuple[str, str], int] = {}
    for record in records:
        key = (record["split"], record["label"])
        counts[key] = counts.get(key, 0) + 1
    summary = ", ".join(f"{split}/{label}: {n}" for (split, label), n in sorted(counts.items()))
    log.info("%s: %d %ss (%s)", name, len(records), kind, summary)
    write_constructed(out_dir, name, kind, list(classes), records, source, mpp=mpp, seed=seed)
