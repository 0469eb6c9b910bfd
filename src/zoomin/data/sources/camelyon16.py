"""Camelyon16: 270 training whole-slide images (normal / tumour) and 130 test slides.

Raw layout (the public bucket ``s3://camelyon-dataset/CAMELYON16/``, read through its public HTTPS
endpoint :data:`BASE_URL`; only what the configured subset needs is fetched)::

    images/normal_###.tif, images/tumor_###.tif, images/test_###.tif   pyramidal TIFFs
    annotations/<slide>.xml        ASAP XML tumour polygons (groups _0/_1/Tumor; _2 = excluded)
    masks/<slide>_mask.tif         tumour masks (level-0 size), an alternative to the XML
    evaluation/reference.csv       test labels: image,class[,type,location] (the CNGB mirror's
                                   testing/reference.csv has the same columns but no header)
    checksums.md5                  "<md5>  <path>" lines

Construction: training slides are labelled by their name (normal -> ``negative``, tumor ->
``positive``) and split into ``train``/``val`` (stratified, seeded); test slides are labelled by
``reference.csv`` (``Tumor`` -> positive) and form the ``test`` split. Slides are hard-linked into
``images/`` (symlinked across file systems; never copied unless ``link=copy``). Tumour slides
with annotations get a mask (:mod:`zoomin.data.slide_masks`) rasterised from the XML (``masks=xml``),
converted from ``masks/*_mask.tif`` (``masks=tif``), whichever exists (``auto``), or none (``none``);
negative slides get an all-zero mask (their truth is known), so every slide but a tumour slide
without annotation has one.
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any, Literal

import numpy as np
from tqdm import tqdm

from zoomin.data.constructed import staged_folder
from zoomin.data.slide_masks import DEFAULT_MASK_DOWNSAMPLE, mask_shape, write_mask_tiff
from zoomin.data.slide_reader import SlideReader
from zoomin.data.sources import Source, common, slides
from zoomin.data.sources.slides import LinkMode, MaskMode
from zoomin.errors import ConfigError, InputFileError

log = logging.getLogger(__name__)

NAME = "camelyon16"
BASE_URL = "https://camelyon-dataset.s3.amazonaws.com/CAMELYON16"
CLASSES = ["negative", "positive"]
SLIDE_PATTERN = re.compile(r"^(normal|tumor|test)_(\d+)$", re.IGNORECASE)
REFERENCE_CANDIDATES = ("evaluation/reference.csv", "testing/reference.csv", "reference.csv")
CHECKSUMS = "checksums.md5"
GROUPS = ("normal", "tumor", "test")
SPLIT_GROUPS = {"train": ("normal", "tumor"), "test": ("test",)}
Split = Literal["train", "test"]  # the parts of the dataset a run can fetch or construct


@dataclass(frozen=True)
class DownloadItem:
    """One object of the bucket to fetch: its key below ``CAMELYON16/``, URL and md5 (if known)."""

    key: str
    url: str
    md5: str | None


# -- checksums, reference, names -------------------------------------------------------------------
def normalise_key(path: str) -> str:
    """A path from checksums.md5 as a key below ``CAMELYON16/`` (``./`` and prefixes removed)."""
    key = path.strip().lstrip("*").replace("\\", "/")
    while key.startswith("./"):
        key = key[2:]
    marker = "CAMELYON16/"
    if marker in key:
        key = key[key.index(marker) + len(marker) :]
    return key.lstrip("/")


def read_checksums(path: str | Path) -> dict[str, str]:
    """``{key: md5}`` from an md5sum-style file (``<md5>  <path>`` or ``<md5> *<path>``)."""
    path = Path(path)
    sums: dict[str, str] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise InputFileError(path, f"cannot read checksum list ({error})") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.strip().split(maxsplit=1)
        if len(parts) != 2 or not re.fullmatch(r"[0-9a-fA-F]{32}", parts[0]):
            raise InputFileError(path, f"line {number} is not '<md5>  <path>': {line!r}")
        sums[normalise_key(parts[1])] = parts[0].lower()
    return sums


def slide_group(name: str) -> str | None:
    """``normal``, ``tumor`` or ``test`` for a slide name such as ``Tumor_011`` (None otherwise)."""
    match = SLIDE_PATTERN.match(name)
    return match.group(1).lower() if match else None


def read_reference(path: str | Path) -> dict[str, str]:
    """Test labels ``{slide name (lower case): "Tumor" | "Normal"}`` from reference.csv.

    The header (``image,class,type,location``) is optional: a first row whose second field is not
    a class is taken as a header.
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = [row for row in csv.reader(handle) if row and any(cell.strip() for cell in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise InputFileError(path, f"cannot read reference labels ({error})") from None
    if rows and rows[0][0].strip().lower() in ("image", "name", "slide", "id"):
        rows = rows[1:]
    labels: dict[str, str] = {}
    for number, row in enumerate(rows, start=1):
        if len(row) < 2:
            raise InputFileError(path, f"row {number} has no class column: {row!r}")
        name, label = Path(row[0].strip()).stem.lower(), row[1].strip().lower()
        if label not in ("tumor", "tumour", "normal"):
            raise InputFileError(path, f"row {number}: class {row[1]!r} is neither Tumor nor Normal")
        labels[name] = "Tumor" if label.startswith("tumo") else "Normal"
    if not labels:
        raise InputFileError(path, "lists no test slides")
    return labels


def find_reference(raw_dir: Path) -> Path | None:
    for candidate in REFERENCE_CANDIDATES:
        if (raw_dir / candidate).is_file():
            return raw_dir / candidate
    return None


def check_subset(splits: Sequence[str], limit: int | None, section: str) -> None:
    """The subset options name at least one split, and ``limit`` (slides per group) is None or >= 1."""
    if not splits:
        raise ConfigError(f"{section}.splits", f"names no split (choose from {', '.join(SPLIT_GROUPS)})")
    if limit is not None and limit < 1:
        raise ConfigError(f"{section}.limit", f"must be >= 1 (or null for all slides), got {limit}")


def select_slides(names: list[str], splits: Sequence[str], limit: int | None) -> list[str]:
    """The slide names of ``splits``, the first ``limit`` of each group (normal, tumor, test)."""
    chosen = []
    wanted = {group for split in splits for group in SPLIT_GROUPS[split]}
    for group in GROUPS:
        if group in wanted:
            members = sorted(name for name in names if slide_group(name) == group)
            chosen += members[:limit] if limit else members
    return chosen


# -- download --------------------------------------------------------------------------------------
def download_plan(
    checksums: dict[str, str],
    base_url: str = BASE_URL,
    splits: Sequence[Split] = ("train", "test"),
    limit: int | None = None,
    masks: bool = True,
    annotations: bool = True,
) -> list[DownloadItem]:
    """The objects the configured subset needs, with md5s from checksums.md5.

    Slides come from the ``images/`` keys of the checksum list; each slide brings its annotation
    XML and mask when the list has them; the test reference comes with the test split.
    """
    base_url = base_url.rstrip("/")
    images = {
        Path(key).stem: key for key in checksums if key.startswith("images/") and key.lower().endswith(".tif")
    }
    slides = select_slides(list(images), splits, limit)
    keys = []
    if "test" in splits:
        keys += [key for key in checksums if key.endswith("reference.csv")]
    for name in slides:
        keys.append(images[name])
        if annotations and f"annotations/{name}.xml" in checksums:
            keys.append(f"annotations/{name}.xml")
        if masks and f"masks/{name}_mask.tif" in checksums:
            keys.append(f"masks/{name}_mask.tif")
    return [DownloadItem(key, f"{base_url}/{key}", checksums.get(key)) for key in keys]


def download(
    raw_dir: str | Path,
    *,
    base_url: str = BASE_URL,
    splits: Sequence[Split] = ("train", "test"),
    limit: int | None = None,
    masks: bool = True,
    annotations: bool = True,
    workers: int = 2,
    retries: int = 3,
) -> Path:
    """Fetch checksums.md5, then every object of :func:`download_plan` (md5-verified)."""
    from zoomin.data.download import download_file

    check_subset(splits, limit, "download")
    raw_dir = Path(raw_dir)
    base_url = base_url.rstrip("/")
    download_file(f"{base_url}/{CHECKSUMS}", raw_dir / CHECKSUMS, retries=retries)
    checksums = read_checksums(raw_dir / CHECKSUMS)
    plan = download_plan(checksums, base_url, splits, limit, masks, annotations)
    if not any(item.key.startswith("images/") for item in plan):
        raise InputFileError(raw_dir / CHECKSUMS, "lists no images/*.tif slides for the requested splits")

    def fetch(item: DownloadItem) -> None:
        download_file(item.url, raw_dir / item.key, md5=item.md5, retries=retries, progress=False)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for _ in tqdm(pool.map(fetch, plan), total=len(plan), desc="camelyon16 files", unit="file"):
            pass
    return raw_dir


# -- construction ----------------------------------------------------------------------------------
def construct(
    raw_dir: str | Path,
    out_dir: str | Path,
    *,
    name: str = NAME,
    val_fraction: float = 0.2,
    seed: int = 0,
    limit: int | None = None,
    splits: Sequence[Split] = ("train", "test"),
    masks: MaskMode = "auto",
    mask_downsample: float = DEFAULT_MASK_DOWNSAMPLE,
    link: LinkMode = "hardlink",
    exclude: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Build the constructed Camelyon16 dataset (kind ``slide``) from a raw folder.

    ``limit`` keeps the first ``limit`` slides of each group (normal, tumor, test) for small runs;
    ``exclude`` is a list of slide names to leave out.
    """
    raw_dir = Path(raw_dir)
    if not 0 <= val_fraction < 1:
        raise ConfigError("construct.val_fraction", f"must lie in [0, 1), got {val_fraction}")
    check_subset(splits, limit, "construct")
    excluded = {item.lower() for item in exclude}
    images_dir = raw_dir / "images"
    files = {p.stem: p for p in sorted(images_dir.glob("*.tif")) if slide_group(p.stem)} if images_dir.is_dir() else {}
    files = {stem: path for stem, path in files.items() if stem.lower() not in excluded}
    chosen = select_slides(list(files), splits, limit)
    if not chosen:
        raise InputFileError(images_dir, "holds no normal_###.tif / tumor_###.tif / test_###.tif slides")

    labels: dict[str, str] = {}
    for slide in chosen:
        group = slide_group(slide)
        if group in ("normal", "tumor"):
            labels[slide] = "negative" if group == "normal" else "positive"
    tests = [slide for slide in chosen if slide_group(slide) == "test"]
    if tests:
        reference_path = find_reference(raw_dir)
        if reference_path is None:
            raise InputFileError(raw_dir / REFERENCE_CANDIDATES[0], "test labels (reference.csv) not found")
        reference = read_reference(reference_path)
        for slide in tests:
            if slide.lower() not in reference:
                raise InputFileError(reference_path, f"has no label for test slide {slide}")
            labels[slide] = "positive" if reference[slide.lower()] == "Tumor" else "negative"
    split = slides.train_val_split({slide: labels[slide] for slide in chosen if slide not in tests}, val_fraction, seed)
    split.update({slide: "test" for slide in tests})

    records: list[dict[str, Any]] = []
    mpps: list[float] = []
    with staged_folder(out_dir) as stage:
        for slide in tqdm(chosen, desc="camelyon16", unit="slide"):
            image_id = slide.lower()
            reader = SlideReader(files[slide])
            try:
                mpp = slides.check_slide(reader)
                if mpp:
                    mpps.append(mpp)
                mask = None if masks == "none" else slides.slide_mask(slide, raw_dir, reader, masks, mask_downsample)
                if mask is None and masks != "none" and labels[slide] == "negative":
                    mask = np.zeros(mask_shape(reader, mask_downsample), dtype=bool)  # known: no tumour
            finally:
                reader.close()
            record = {
                "image_id": image_id,
                "path": slides.place_slide(files[slide], stage, f"images/{image_id}.tif", link),
                "label": labels[slide],
                "split": split[slide],
                "mask": None,
            }
            if mask is not None:
                record["mask"] = f"masks/{image_id}.tif"
                write_mask_tiff(stage / record["mask"], mask)
            elif labels[slide] == "positive" and masks != "none":
                log.warning("%s: tumour slide without annotation; no mask", slide)
            records.append(record)
        common.save_constructed(
            stage, name, CLASSES, records, NAME, seed=seed, kind="slide", mpp=median(mpps) if mpps else None
        )
    return records


SOURCE = Source(NAME, "slide", construct, download)
