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
from pathlib import Path
from statistics import median
from typing import Any

from tqdm import tqdm

from zoomin.data.asap_xml import EXCLUDED_GROUPS, TUMOUR_GROUPS
from zoomin.data.constructed import SPLITS, staged_folder, write_constructed
from zoomin.data.slide_reader import SlideReader
from zoomin.data.slide_masks import DEFAULT_MASK_DOWNSAMPLE, mask_from_image, mask_from_xml, write_mask_tiff
from zoomin.data.sources import common
from zoomin.data.sources.camelyon16 import check_slide, place_slide, stratified_split
from zoomin.errors import InputFileError

log = logging.getLogger(__name__)

SOURCE = "slide_folder"


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
                raise InputFileError(path, f"missing column(s) {', '.join(missing)}; found {', '.join(columns) or 'nothing'}")
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
    name: str = SOURCE,
    labels: Any = "labels.csv",
    classes: Any = None,
    val_fraction: Any = 0.2,
    seed: Any = 0,
    link: Any = "hardlink",
    mask_downsample: Any = DEFAULT_MASK_DOWNSAMPLE,
    tumour_groups: Any = TUMOUR_GROUPS,
    excluded_groups: Any = EXCLUDED_GROUPS,
) -> list[dict[str, Any]]:
    """Build a constructed slide dataset from ``raw_dir`` and its labels CSV."""
    raw_dir = Path(raw_dir)
    labels_path = raw_dir / str(labels)
    rows = read_labels(labels_path)
    val_fraction = common.as_float(val_fraction, "val_fraction")
    seed = common.as_int(seed, "seed")
    mask_downsample = common.as_float(mask_downsample, "mask_downsample")
    tumour_groups = common.as_list(tumour_groups, "tumour_groups")
    excluded_groups = common.as_list(excluded_groups, "excluded_groups") if excluded_groups else []
    present = sorted({row["label"] for row in rows})
    class_list = common.as_list(classes, "classes") if classes else present
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
    if any(not split for *_, split in entries):
        by_label: dict[str, list[str]] = {}
        for _, row, _, image_id, split in entries:
            if not split:
                by_label.setdefault(row["label"], []).append(image_id)
        auto = stratified_split(by_label, val_fraction, seed)
    else:
        auto = {}

    records, mpps = [], []
    with staged_folder(out_dir) as stage:
        for line, row, slide, image_id, split in tqdm(entries, desc=name, unit="slide"):
            reader = SlideReader(slide)
            try:
                mpp = check_slide(reader)
                if mpp:
                    mpps.append(mpp)
                mask = None
                if row.get("annotation"):
                    mask = mask_from_xml(raw_dir / row["annotation"], reader, mask_downsample, tumour_groups, excluded_groups)
                elif row.get("mask"):
                    mask = mask_from_image(raw_dir / row["mask"], reader, mask_downsample)
            finally:
                reader.close()
            suffix = "".join(slide.suffixes[-1:]) or ".tif"
            record = {
                "image_id": image_id,
                "path": place_slide(slide, stage, f"images/{image_id}{suffix}", str(link).lower()),
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
        write_constructed(
            stage, name, "slide", class_list, records, SOURCE, mpp=median(mpps) if mpps else None, seed=seed
        )
    return records
