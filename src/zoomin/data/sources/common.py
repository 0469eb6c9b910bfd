"""Small helpers shared by the dataset builders: image checks, file placement, ids, parameters."""

from __future__ import annotations

import logging
import os
import re
import shutil
import inspect
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from zoomin.data.constructed import write_constructed
from zoomin.errors import ConfigError, InputFileError, UserError

log = logging.getLogger(__name__)

ID_PATTERN = re.compile(r"^[A-Za-z0-9_.-]+$")
SPLITS = ("train", "val", "test", "all")

# Real datasets hold large images on purpose (fMoW has images of > 100 Mpixel).
Image.MAX_IMAGE_PIXELS = None


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
        with Image.open(path) as image:
            image.load()
            return image.height, image.width
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise InputFileError(path, f"cannot be decoded as an image ({error})") from None


def image_size(path: str | Path) -> tuple[int, int]:
    """``(height, width)`` from the image header, without decoding the pixels."""
    path = Path(path)
    try:
        with Image.open(path) as image:
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
    return _save_png(mask, out_dir, relative)


def write_point_mask(
    out_dir: str | Path, relative: str, size: tuple[int, int], points: np.ndarray, radius: float
) -> str:
    """Write a single-channel PNG of ``size`` with a disc of ``radius`` around each ``(x, y)`` point."""
    height, width = size
    mask = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(mask)
    for x, y in np.asarray(points, dtype=float).reshape(-1, 2):
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=255)
    return _save_png(mask, out_dir, relative)


def _save_png(mask: Image.Image, out_dir: str | Path, relative: str) -> str:
    target = Path(out_dir) / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    mask.save(tmp, format="PNG", optimize=False)
    os.replace(tmp, target)
    return relative


def save_constructed(
    out_dir: str | Path,
    name: str,
    classes: Sequence[str],
    records: list[dict[str, Any]],
    source: str,
    seed: int | None = None,
) -> None:
    """Write labels.csv + dataset.json for an image dataset (through :mod:`zoomin.data.constructed`).

    Builders place their files in a :func:`zoomin.data.constructed.staged_folder` and call this last.
    """

    counts: dict[tuple[str, str], int] = {}
    for record in records:
        key = (record["split"], record["label"])
        counts[key] = counts.get(key, 0) + 1
    summary = ", ".join(f"{split}/{label}: {n}" for (split, label), n in sorted(counts.items()))
    log.info("%s: %d images (%s)", name, len(records), summary)
    write_constructed(out_dir, name, "image", list(classes), records, source, mpp=None, seed=seed)


# --------------------------------------------------------------------------------------------------
# Parameters arrive from YAML (typed) or from ``--param k=v`` (strings): accept both.


def as_int(value: Any, key: str) -> int:
    try:
        if isinstance(value, bool):
            raise ValueError
        return int(value)
    except (TypeError, ValueError):
        raise UserError(f"parameter {key!r} must be an integer, got {value!r}") from None


def as_float(value: Any, key: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise UserError(f"parameter {key!r} must be a number, got {value!r}") from None


def as_bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise UserError(f"parameter {key!r} must be true or false, got {value!r}")


def as_list(value: Any, key: str) -> list[str]:
    """A list given as a YAML list or as a comma-separated string."""
    if isinstance(value, str):
        items = [item.strip() for item in value.split(",")]
    elif isinstance(value, (list, tuple)):
        items = [str(item).strip() for item in value]
    else:
        raise UserError(f"parameter {key!r} must be a list or a comma-separated string, got {value!r}")
    items = [item for item in items if item]
    if not items:
        raise UserError(f"parameter {key!r} is empty")
    return items


def checked(builder: Callable[..., Any], source: str) -> Callable[..., Any]:
    """``builder(raw_dir, out_dir, **params)`` that refuses unknown parameters with a clear error."""
    accepted = list(inspect.signature(builder).parameters)[2:]

    def run(raw_dir: Any, out_dir: Any, **params: Any) -> Any:
        unknown = sorted(set(params) - set(accepted))
        if unknown:
            raise ConfigError(
                "construct", f"source {source!r} does not take {', '.join(unknown)} (it takes: {', '.join(accepted)})"
            )
        return builder(raw_dir, out_dir, **params)

    run.__doc__ = builder.__doc__
    run.__name__ = f"construct_{source}"
    return run
