"""Bring your own slides: a folder of whole-slide images + a labels CSV -> constructed ``kind: slide``.

The raw folder holds the slides (single-file formats OpenSlide reads: pyramidal TIFF, SVS, NDPI, ...)
and a CSV (default ``labels.csv``) with one row per slide; paths are relative to the folder::

    path,label[,image_id][,split][,annotation][,mask]
    slides/case_01.svs,tumour,,train,annotations/case_01.xml,
    slides/case_02.svs,normal,,test,,

* ``label``: a class name; ``classes`` orders them (default: sorted names).
* ``image_id``: optional (default: the file name without extension, made id-safe).
* ``split``: optional ``train``/``val``/``test``/``all``; without the column, a stratified seeded
  ``val_fraction`` of the slides becomes ``val`` and the rest ``train``.
* ``annotation``: optional ASAP XML (polygons in level-0 pixels; ``tumour_groups`` are objects,
  ``excluded_groups`` holes); ``mask``: optional mask image (non-zero = object) the size of the
  slide or of one of its levels. Either becomes the slide's mask (docs/own_data_slides.md).

Slides are hard-linked (symlinked across file systems, or copied with ``link=copy``), checked by
decoding their smallest level, and masks are written at the level nearest ``mask_downsample``.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from pathlib import Path
from statistics import median
from typing import Any

from tqdm import tqdm

from zoomin.data.asap_xml import EXCLUDED_GROUPS, TUMOUR_GROUPS
from zoomin.data.constructed import SPLITS, staged_folder
from zoomin.data.slide_masks import DEFAULT_MASK_DOWNSAMPLE, mask_from_image, mask_from_xml, write_mask_tiff
from zoomin.data.slide_reader import SlideReader
from zoomin.data.sources import Source, common, slides
from zoomin.data.sources.slides import LinkMode
from zoomin.errors import ConfigError, InputFileError

log = logging.getLogger(__name__)

NAME = "slide_folder"


def read_labels(path: Path) -> list[dict[str, str]]:
    """Rows of the labels CSV (``path`` and ``label`` required), stripped; errors name the file."""
    if not path.is_file():
        raise InputFileError(path, "labels CSV not found")
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = [c.strip() for c in reader.fieldnames or []]
            missing = [c for c in ("path", "label") if c not in columns]
            if missing:
                found = ", ".join(columns) or "nothing"
                raise InputFileError(path, f"missing column(s) {', '.join(missing)}; found {found}")
            rows = []
            for row in reader:
                if None in row:
                    raise InputFileError(path, f"line {reader.line_num}: too many fields")
                rows.append({(k or "").strip(): (v or "").strip() for k, v in row.items()})
    except (UnicodeDecodeError, csv.Error) as error:
        raise InputFileError(path, f"not a readable CSV file ({error})") from None
    if not rows:
        raise InputFileError(path, "lists no slides")
    return rows


def construct(
    raw_dir: str | Path,
    out_dir: str | Path,
    *,
    name: str = NAME,
    labels: str = "labels.csv",
    classes: Sequence[str] | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    link: LinkMode = "hardlink",
    mask_downsample: float = DEFAULT_MASK_DOWNSAMPLE,
    tumour_groups: Sequence[str] = TUMOUR_GROUPS,
    excluded_groups: Sequence[str] = EXCLUDED_GROUPS,
) -> list[dict[str, Any]]:
    """Build a constructed slide dataset from ``raw_dir`` and its labels CSV (``labels``, relative to it).

    ``classes`` orders the classes (default: the sorted labels); ``excluded_groups`` may be empty.
    """
    raw_dir = Path(raw_dir)
    labels_path = raw_dir / labels
    if not 0 <= val_fraction < 1:
        raise ConfigError("construct.val_fraction", f"must lie in [0, 1), got {val_fraction}")
    if not tumour_groups:
        raise ConfigError("construct.tumour_groups", "names no annotation group")
    rows = read_labels(labels_path)
    present = sorted({row["label"] for row in rows})
    class_list = list(classes) if classes else present
    unknown = sorted(set(present) - set(class_list))
    if unknown:
        raise InputFileError(labels_path, f"labels {unknown} are not among classes {class_list}")

    entries = []
    for line, row in enumerate(rows, start=2):
        slide = raw_dir / row["path"]
        if not row["path"] or not slide.is_file():
            raise InputFileError(labels_path, f"line {line}: slide file {row['path']!r} not found under {raw_dir}")
        image_id = row.get("image_id") or common.safe_id(slide.stem)
        split = row.get("split", "")
        if split and split not in SPLITS:
            raise InputFileError(labels_path, f"line {line}: unknown split {split!r} (allowed: {list(SPLITS)})")
        entries.append((line, row, slide, image_id, split))
    unsplit = {image_id: row["label"] for _, row, _, image_id, split in entries if not split}
    auto = slides.train_val_split(unsplit, val_fraction, seed) if unsplit else {}

    records, mpps = [], []
    with staged_folder(out_dir) as stage:
        for _line, row, slide, image_id, split in tqdm(entries, desc=name, unit="slide"):
            reader = SlideReader(slide)
            try:
                mpp = slides.check_slide(reader)
                if mpp:
                    mpps.append(mpp)
                mask = None
                if row.get("annotation"):
                    xml = raw_dir / row["annotation"]
                    mask = mask_from_xml(xml, reader, mask_downsample, tumour_groups, excluded_groups)
                elif row.get("mask"):
                    mask = mask_from_image(raw_dir / row["mask"], reader, mask_downsample)
            finally:
                reader.close()
            suffix = "".join(slide.suffixes[-1:]) or ".tif"
            record = {
                "image_id": image_id,
                "path": slides.place_slide(slide, stage, f"images/{image_id}{suffix}", link),
                "label": row["label"],
                "split": split or auto[image_id],
                "mask": None,
            }
            if mask is not None:
                record["mask"] = f"masks/{image_id}.tif"
                write_mask_tiff(stage / record["mask"], mask)
            records.append(record)
        if len({r["image_id"] for r in records}) != len(records):
            raise InputFileError(labels_path, "two slides share an image_id; give them distinct image_id values")
        common.save_constructed(
            stage, name, class_list, records, NAME, seed=seed, kind="slide", mpp=median(mpps) if mpps else None
        )
    return records


SOURCE = Source(NAME, "slide", construct)
