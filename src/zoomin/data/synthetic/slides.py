"""Synthetic Camelyon16-like whole slides, written in Camelyon16's raw layout (docs/synthetic.md).

:func:`write_raw_folder` writes what :mod:`zoomin.data.sources.camelyon16` reads::

    images/normal_###.tif, images/tumor_###.tif, images/test_###.tif   pyramidal TIFFs
    annotations/<slide>.xml        ASAP XML outlines of the metastases (group "Tumor")
    evaluation/reference.csv       test labels: image,class,type,location
    checksums.md5                  "<md5>  <path>" lines

so the ``synthetic_camelyon16`` source constructs it with Camelyon16's own construction, and the
workflow's slide caches and views treat it exactly like the real slides. Each slide is a tiled
(``tile`` px, JPEG) pyramidal TIFF that OpenSlide opens as ``generic-tiff``: level 0, then
halvings as successive main IFDs (``subfiletype=1``), with the resolution (``mpp``) in the tags.
Its layout comes from :mod:`~zoomin.data.synthetic.slide_layout`, its pixels tile by tile from
:mod:`~zoomin.data.synthetic.slide_tiles`; no level is ever held in memory whole.

Deterministic: slide ``<group>_<n>`` depends only on ``seed``, its name and the parameters (its
texture bank on ``seed`` and whether it is a training or test slide), so the same call writes the
same bytes, with any number of ``workers``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import tifffile
from tqdm import tqdm

from zoomin.atomic import atomic_path
from zoomin.data.synthetic.slide_layout import SlideLayout, SlideParams, draw_layout
from zoomin.data.synthetic.slide_tiles import SlideTiles, TextureBank, jpeg_tables
from zoomin.errors import ConfigError

log = logging.getLogger(__name__)

_SLIDE_STREAM = 0x5D1E
GROUP_CODES = {"normal": 0, "tumor": 1, "test": 2}
BANK_OF_GROUP = {"normal": 0, "tumor": 0, "test": 1}  # training and test slides draw from separate banks
REFERENCE = "evaluation/reference.csv"
CHECKSUMS = "checksums.md5"


@dataclass(frozen=True)
class SlideJob:
    """One slide to write: its file name stem (``tumor_003``), class, and where."""

    name: str
    positive: bool
    path: Path


@dataclass(frozen=True)
class SlideSummary:
    """What was written for one slide."""

    name: str
    positive: bool
    bytes: int
    tumour_fraction: float
    seconds: float


def slide_rng(seed: int, name: str) -> np.random.Generator:
    """The generator that lays out slide ``name`` (``normal_001``) of a raw folder drawn from ``seed``."""
    group, number = name.rsplit("_", 1)
    return np.random.default_rng([_SLIDE_STREAM, seed, GROUP_CODES[group], int(number)])


@lru_cache(maxsize=4)
def texture_bank(seed: int, bank: int, params: SlideParams) -> TextureBank:
    """The texture bank of one slide group, drawn once per process."""
    return TextureBank.draw(seed, bank, params)


def slide_layout(seed: int, name: str, positive: bool, params: SlideParams) -> tuple[SlideLayout, np.ndarray]:
    """The layout of slide ``name`` and its per-cell texture choice (``(rows, cols)`` variant indices)."""
    rng = slide_rng(seed, name)
    layout = draw_layout(rng, positive, params)
    rows, cols = -(-params.height // params.tile), -(-params.width // params.tile)
    variants = rng.integers(0, params.bank_size * 8, (rows, cols))
    return layout, variants


def write_slide(path: Path, layout: SlideLayout, variants: np.ndarray, bank: TextureBank) -> None:
    """Write the pyramidal TIFF of ``layout`` to ``path`` (atomically), one tile at a time."""
    params = bank.params
    tiles = SlideTiles(bank, layout, variants)
    side = params.tile
    big = params.width * params.height * 3 > 3 << 30  # a rough bound on the file; BigTIFF past 4 GB
    with atomic_path(path) as tmp:
        with tifffile.TiffWriter(tmp, bigtiff=big) as tif:
            for level, (width, height) in enumerate(params.levels()):
                shape = (-(-height // side), -(-width // side))
                plan = tiles.plan(level, shape)
                per_cm = 1e4 / (params.mpp * (1 << level))
                tif.write(
                    (tiles.tile_bytes(plan, row, col) for row in range(shape[0]) for col in range(shape[1])),
                    shape=(height, width, 3),
                    dtype=np.uint8,
                    tile=(side, side),
                    photometric="rgb",
                    compression="jpeg",
                    subsampling=(2, 2),
                    jpegtables=jpeg_tables(params.quality),
                    subfiletype=0 if level == 0 else 1,
                    resolution=(per_cm, per_cm),
                    resolutionunit="CENTIMETER",
                    metadata=None,
                )


def write_annotation(path: Path, layout: SlideLayout) -> None:
    """ASAP XML of the metastases: one polygon per region, group ``Tumor``, level-0 x/y."""
    root = ET.Element("ASAP_Annotations")
    annotations = ET.SubElement(root, "Annotations")
    for polygon in layout.tumours:
        element = ET.SubElement(
            annotations, "Annotation", Name=polygon.name, Type="Polygon", PartOfGroup=polygon.group, Color="#F4FA58"
        )
        coordinates = ET.SubElement(element, "Coordinates")
        for order, (x, y) in enumerate(polygon.points):
            ET.SubElement(coordinates, "Coordinate", Order=str(order), X=f"{x:.2f}", Y=f"{y:.2f}")
    groups = ET.SubElement(root, "AnnotationGroups")
    ET.SubElement(groups, "Group", Name="Tumor", PartOfGroup="None", Color="#F4FA58")
    with atomic_path(path) as tmp:
        ET.ElementTree(root).write(tmp, encoding="utf-8", xml_declaration=True)


def make_slide(job: SlideJob, seed: int, params: SlideParams) -> SlideSummary:
    """Write one slide (and its annotation if positive); what :func:`write_raw_folder` runs per slide."""
    started = time.perf_counter()
    layout, variants = slide_layout(seed, job.name, job.positive, params)
    bank = texture_bank(seed, BANK_OF_GROUP[job.name.split("_")[0]], params)
    write_slide(job.path, layout, variants, bank)
    if job.positive:
        write_annotation(job.path.parent.parent / "annotations" / f"{job.name}.xml", layout)
    return SlideSummary(
        job.name, job.positive, job.path.stat().st_size, layout.tumour_fraction, time.perf_counter() - started
    )


def test_labels(seed: int, n_normal: int, n_tumour: int) -> list[bool]:
    """Whether each test slide (``test_001``...) is positive: ``n_tumour`` of them, in a seeded order."""
    labels = np.array([False] * n_normal + [True] * n_tumour)
    return [bool(v) for v in labels[np.random.default_rng([_SLIDE_STREAM, seed]).permutation(len(labels))]]


def plan_jobs(
    raw_dir: Path, seed: int, n_normal: int, n_tumour: int, n_test_normal: int, n_test_tumour: int
) -> list[SlideJob]:
    images = raw_dir / "images"
    jobs = [SlideJob(f"normal_{i:03d}", False, images / f"normal_{i:03d}.tif") for i in range(1, n_normal + 1)]
    jobs += [SlideJob(f"tumor_{i:03d}", True, images / f"tumor_{i:03d}.tif") for i in range(1, n_tumour + 1)]
    for i, positive in enumerate(test_labels(seed, n_test_normal, n_test_tumour), start=1):
        jobs.append(SlideJob(f"test_{i:03d}", positive, images / f"test_{i:03d}.tif"))
    return jobs


def write_reference(path: Path, jobs: list[SlideJob]) -> None:
    rows = ["image,class,type,location"]
    for job in jobs:
        if job.name.startswith("test_"):
            name = job.name.capitalize()  # the challenge's spelling: Test_001
            rows.append(f"{name},Tumor,Micro,Metastases" if job.positive else f"{name},Normal,,")
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(rows) + "\n", encoding="utf-8")


def write_checksums(raw_dir: Path) -> None:
    lines = []
    for path in sorted(p for p in raw_dir.rglob("*") if p.is_file() and not p.name.startswith(".")):
        if path.name == CHECKSUMS:
            continue
        digest = hashlib.md5()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        lines.append(f"{digest.hexdigest()}  CAMELYON16/{path.relative_to(raw_dir).as_posix()}")
    with atomic_path(raw_dir / CHECKSUMS) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_raw_folder(
    raw_dir: str | Path,
    params: SlideParams,
    *,
    seed: int,
    n_normal: int,
    n_tumour: int,
    n_test_normal: int,
    n_test_tumour: int,
    workers: int = 1,
    progress: bool = True,
) -> list[SlideSummary]:
    """Write a Camelyon16-layout raw folder of synthetic slides into ``raw_dir`` (see the module docstring).

    ``workers`` processes write slides in parallel (1: in this process). Every file is written to a
    temporary name and renamed when complete; the caller writes the folder's ``.complete`` marker.
    """
    params.check("download")
    counts = {
        "n_normal": n_normal, "n_tumour": n_tumour, "n_test_normal": n_test_normal, "n_test_tumour": n_test_tumour
    }
    for key, value in counts.items():
        if value < 0:
            raise ConfigError(f"download.{key}", f"must be >= 0, got {value}")
    if n_normal + n_tumour < 1:
        raise ConfigError("download.n_normal", "the training slides (n_normal + n_tumour) must number at least one")
    if seed < 0:
        raise ConfigError("download.seed", f"must be a non-negative integer, got {seed}")
    if workers < 1:
        raise ConfigError("download.workers", f"must be at least 1, got {workers}")
    raw_dir = Path(raw_dir)
    (raw_dir / "images").mkdir(parents=True, exist_ok=True)
    (raw_dir / "annotations").mkdir(parents=True, exist_ok=True)
    jobs = plan_jobs(raw_dir, seed, n_normal, n_tumour, n_test_normal, n_test_tumour)
    remove_stale(raw_dir, jobs)
    log.info(
        "synthetic Camelyon16: %d slides of %dx%d px into %s (seed %d, %d worker(s))",
        len(jobs), params.width, params.height, raw_dir, seed, workers,
    )
    bar = tqdm(total=len(jobs), desc="synthetic slides", unit="slide", disable=not progress)
    summaries: list[SlideSummary] = []
    try:
        if workers == 1:
            for job in jobs:
                summaries.append(make_slide(job, seed, params))
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
                futures = [pool.submit(make_slide, job, seed, params) for job in jobs]
                for future in futures:
                    summaries.append(future.result())
                    bar.update()
    finally:
        bar.close()
    if any(job.name.startswith("test_") for job in jobs):
        write_reference(raw_dir / REFERENCE, jobs)
    write_checksums(raw_dir)
    total = sum(s.bytes for s in summaries)
    positives = [s.tumour_fraction for s in summaries if s.positive]
    log.info(
        "wrote %d slides, %.2f GB; metastases cover %.3f-%.3f %% of the tissue of the positive slides",
        len(summaries), total / 1e9,
        100 * min(positives, default=0.0), 100 * max(positives, default=0.0),
    )
    return summaries


def remove_stale(raw_dir: Path, keep: list[SlideJob]) -> None:
    """Remove the slides and annotations of an earlier raw folder that this one will not have (the
    construction takes every slide it finds)."""
    wanted = {job.path.name for job in keep} | {f"{job.name}.xml" for job in keep if job.positive}
    for folder in (raw_dir / "images", raw_dir / "annotations"):
        for path in folder.glob("*"):
            if path.name not in wanted:
                os.remove(path)
