"""Bring your own data: a folder of images plus a labels CSV, turned into the constructed format.

The CSV has a header with the columns ``image`` (path relative to the images folder, or absolute),
``label`` (any class name) and optionally ``split`` (``train``/``val``/``test``/``all``; default
``all`` = cross-validation) and ``mask`` (a per-image mask, same size as the image, non-zero = object
of interest). See docs/own_data.md.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tqdm import tqdm

from zoomin.atomic import write_png
from zoomin.data.constructed import SPLITS, staged_folder
from zoomin.data.sources import Source, common
from zoomin.errors import ConfigError, InputFileError

log = logging.getLogger(__name__)

NAME = "image_folder"
KEPT_FORMATS = {".png", ".jpg", ".jpeg", ".bmp"}  # copied as they are; others are converted to PNG


def read_labels(labels: Path) -> list[tuple[int, dict[str, str]]]:
    """Rows of the labels CSV as ``(line number, row)``; checks the header and every row's fields."""
    if not labels.is_file():
        raise InputFileError(labels, "labels CSV not found")
    rows = []
    try:
        with open(labels, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = [c.strip() for c in (reader.fieldnames or [])]
            reader.fieldnames = columns
            missing = [c for c in ("image", "label") if c not in columns]
            if missing:
                raise InputFileError(
                    labels,
                    f"missing column(s) {', '.join(missing)}: the header must be image,label[,split][,mask] "
                    f"(found {','.join(columns) or 'nothing'})",
                )
            for row in reader:
                line = reader.line_num
                if None in row or any(row.get(c) is None for c in columns):
                    raise InputFileError(labels, f"line {line}: wrong number of fields")
                rows.append((line, {k: (v or "").strip() for k, v in row.items()}))
    except (UnicodeDecodeError, csv.Error) as error:
        raise InputFileError(labels, f"not a readable CSV file ({error})") from None
    if not rows:
        raise InputFileError(labels, "lists no images")
    return rows


def _resolve(images_dir: Path, value: str) -> Path:
    path = Path(value)
    return path if path.is_absolute() else images_dir / path


def _id_for(images_dir: Path, path: Path) -> str:
    try:
        relative = path.relative_to(images_dir)
    except ValueError:
        relative = Path(path.name)
    return common.safe_id(relative.with_suffix("").as_posix().replace("/", "__"))


def _copy_image(source: Path, stage: Path, image_id: str) -> str:
    suffix = source.suffix.lower()
    if suffix in KEPT_FORMATS:
        return common.place_file(source, stage, f"images/{image_id}{suffix}")
    relative = f"images/{image_id}.png"
    with common.open_image(source) as image:
        write_png(stage / relative, image.convert("RGB"))
    return relative


def _copy_mask(source: Path, size: tuple[int, int], stage: Path, image_id: str, labels: Path, line: int) -> str:
    if not source.is_file():
        raise InputFileError(source, f"mask listed on line {line} of {labels} not found")
    try:
        with common.open_image(source) as mask:
            pixels = np.asarray(mask)
    except (OSError, SyntaxError, ValueError) as error:
        raise InputFileError(source, f"cannot be decoded as a mask image ({error})") from None
    if pixels.shape[:2] != size:
        raise InputFileError(
            source, f"mask is {pixels.shape[1]}x{pixels.shape[0]} but its image is {size[1]}x{size[0]} (w x h)"
        )
    binary = pixels != 0 if pixels.ndim == 2 else np.any(pixels != 0, axis=-1)
    relative = f"masks/{image_id}.png"
    write_png(stage / relative, binary.astype(np.uint8) * 255)
    return relative


def construct(
    raw_dir: str | Path | None,
    out_dir: str | Path,
    *,
    name: str = NAME,
    labels: Path | None = None,
    images: Path | None = None,
    classes: Sequence[str] | None = None,
    default_split: Literal["train", "val", "test", "all"] = "all",
    verify_images: bool = True,
) -> list[dict[str, Any]]:
    """Build a constructed dataset from a labels CSV and the images it lists.

    ``labels``: the CSV (default ``raw_dir/labels.csv``); ``images``: the folder the CSV's image and
    mask paths are relative to (default: the CSV's folder). Both as given (relative to the current
    directory) or absolute. ``classes`` fixes the class order (a list or comma-separated string;
    set it when the order matters, e.g. ``negative,positive``); by default the sorted distinct
    labels. ``default_split`` applies to rows without a ``split`` value.
    """
    if labels is None and raw_dir is None:
        raise ConfigError(
            "construct.labels", "image_folder needs the labels CSV (labels=...) or a raw folder holding labels.csv"
        )
    labels_path = Path(labels) if labels else Path(raw_dir) / "labels.csv"
    images_dir = Path(images) if images else labels_path.parent
    if default_split not in SPLITS:
        raise InputFileError(labels_path, f"default_split {default_split!r} is not one of {list(SPLITS)}")
    rows = read_labels(labels_path)
    found = sorted({row["label"] for _, row in rows if row["label"]})
    class_list = list(classes) if classes is not None else found
    records: list[dict[str, Any]] = []
    ids: dict[str, int] = {}
    with staged_folder(out_dir) as stage:
        for line, row in tqdm(rows, desc=name, unit="image"):
            if not row["image"]:
                raise InputFileError(labels_path, f"line {line}: empty 'image'")
            label = row["label"]
            if not label:
                raise InputFileError(labels_path, f"line {line}: empty 'label' for {row['image']}")
            if label not in class_list:
                raise InputFileError(
                    labels_path, f"line {line}: label {label!r} is not one of the classes {class_list}"
                )
            split = row.get("split") or default_split
            if split not in SPLITS:
                raise InputFileError(labels_path, f"line {line}: split {split!r} is not one of {list(SPLITS)}")
            image = _resolve(images_dir, row["image"])
            if not image.is_file():
                raise InputFileError(image, f"image listed on line {line} of {labels_path} not found")
            image_id = _id_for(images_dir, image)
            if image_id in ids:
                raise InputFileError(
                    labels_path,
                    f"line {line}: {row['image']} gives image id {image_id!r}, already used on line {ids[image_id]}",
                )
            ids[image_id] = line
            size = common.check_image(image) if verify_images else common.image_size(image)
            record = {"image_id": image_id, "path": _copy_image(image, stage, image_id), "label": label, "split": split}
            if row.get("mask"):
                record["mask"] = _copy_mask(_resolve(images_dir, row["mask"]), size, stage, image_id, labels_path, line)
            records.append(record)
        common.save_constructed(stage, name, class_list, records, NAME)
    return records


SOURCE = Source(NAME, "image", construct)
