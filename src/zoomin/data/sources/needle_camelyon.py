"""NeedleCamelyon: fixed-size crops of Camelyon16 slides with a tiny tumour ("needle") or none.

The recipe of facebookresearch/Needles-in-Haystacks (``data/camelyon/``; built there from
CAMELYON17, here from Camelyon16 as in the Zoom-In paper), restated:

* Crops are ``crop_size`` x ``crop_size`` pixels of pyramid level ``level``.
* A metastasis is a connected component of a tumour slide's mask (ASAP XML or ``*_mask.tif``).
  A positive crop contains the *whole* metastasis and has a tumour fraction strictly between
  ``roi_low`` and ``roi_high`` (the ROI-to-image range); metastases larger than
  ``roi_high * crop_size**2`` are skipped. Up to ``crops_per_metastasis`` (50) distinct crops are
  drawn at random (``seed``) among all positions that qualify; crops reaching outside the slide
  (black padding) are rejected.
* Negatives are random crops of normal slides that are mostly tissue: at least
  ``min_tissue_fraction`` of the crop's pixels above the slide's Otsu saturation threshold
  (:mod:`zoomin.data.tissue`). There are as many negatives as positives in every split.
* Splits are by metastasis (all crops of one metastasis share a split) and by slide for the
  negatives, with ``split_fractions`` (train, val, test), seeded.

Output: the constructed format with ``kind: image``: ``images/<id>.png``, ``masks/<id>.png``
(tumour = 255; all zero for negatives) and ``crops.csv`` recording where each crop came from.
Tumour masks are never rasterised whole at the crop level: components are found on a coarse mask
(``coarse_downsample``) and each metastasis is rasterised only in a window around it.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage
from tqdm import tqdm

from zoomin.atomic import atomic_path, write_png
from zoomin.data.asap_xml import Polygon, check_inside, rasterise, read_asap_xml
from zoomin.data.constructed import staged_folder
from zoomin.data.slide_cache import slide_mpp
from zoomin.data.slide_reader import SlideReader
from zoomin.data.sources import Source, camelyon16, common, slides
from zoomin.data.sources.slides import MaskMode
from zoomin.data.tissue import tissue_fraction, tissue_mask
from zoomin.errors import ConfigError, InputFileError

log = logging.getLogger(__name__)

NAME = "needle_camelyon"
CLASSES = ["negative", "positive"]
SPLITS = ("train", "val", "test")


@dataclass
class Crop:
    """One written crop and where it came from."""

    image_id: str
    slide: str
    group: str  # metastasis ("<slide>/m<k>") or normal slide
    label: str
    top: int  # level-0 pixels
    left: int
    tumour_fraction: float
    tissue_fraction: float
    split: str = ""


class TumourMask:
    """Windowed access to a slide's tumour mask, from ASAP polygons or a mask slide."""

    def __init__(self, polygons: list[Polygon] | None = None, mask_reader: SlideReader | None = None):
        self.polygons = polygons
        self.mask_reader = mask_reader

    def window(
        self, top: float, left: float, height: int, width: int, downsample: float, coarse: bool = False
    ) -> np.ndarray:
        """Boolean mask of ``height`` x ``width`` pixels of ``downsample``, from level-0 (top, left)."""
        if self.polygons is not None:
            return rasterise(self.polygons, height, width, downsample, top, left, outline=coarse)
        assert self.mask_reader is not None
        pixels = self.mask_reader.render(top, left, height * downsample, width * downsample, height, width)
        return pixels.max(axis=2) > 0

    def close(self) -> None:
        if self.mask_reader is not None:
            self.mask_reader.close()


def _tumour_mask(name: str, raw_dir: Path, reader: SlideReader, masks: MaskMode) -> TumourMask | None:
    found = slides.annotation_file(raw_dir, name, masks)
    if found is None:
        return None
    kind, path = found
    if kind == "xml":
        polygons = read_asap_xml(path)
        height, width = reader.size
        check_inside(path, polygons, width, height)
        return TumourMask(polygons=polygons)
    return TumourMask(mask_reader=SlideReader(path))


def _box_sums(mask: np.ndarray, size: int) -> np.ndarray:
    """Sum of ``mask`` over every ``size`` x ``size`` window (valid positions only)."""
    integral = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1), dtype=np.int64)
    integral[1:, 1:] = np.cumsum(np.cumsum(mask, axis=0, dtype=np.int64), axis=1)
    return integral[size:, size:] - integral[:-size, size:] - integral[size:, :-size] + integral[:-size, :-size]


class _Builder:
    def __init__(self, stage: Path, level: int, size: int, rng: np.random.Generator):
        self.stage, self.level, self.size, self.rng = stage, level, size, rng
        self.crops: list[Crop] = []
        self.counters: dict[str, int] = {}

    def next_id(self, prefix: str) -> str:
        """``<prefix>_000``, ``<prefix>_001``, ... (unique within the dataset)."""
        number = self.counters.get(prefix, 0)
        self.counters[prefix] = number + 1
        return f"{prefix}_{number:03d}"

    def write(self, crop: Crop, pixels: np.ndarray, mask: np.ndarray) -> None:
        write_png(self.stage / "images" / f"{crop.image_id}.png", pixels)
        write_png(self.stage / "masks" / f"{crop.image_id}.png", np.where(mask, 255, 0).astype(np.uint8))
        self.crops.append(crop)


def positive_crops(
    builder: _Builder,
    name: str,
    reader: SlideReader,
    tumour: TumourMask,
    roi_low: float,
    roi_high: float,
    per_metastasis: int,
    coarse_downsample: float,
) -> int:
    """Draw the positive crops of one tumour slide; return how many metastases gave crops."""
    S, level = builder.size, builder.level
    ds = float(reader.level_downsamples[level])
    level_w, level_h = reader.level_dimensions[level]
    height0, width0 = reader.size
    coarse_ds = max(coarse_downsample, ds)
    ch, cw = max(1, int(np.ceil(height0 / coarse_ds))), max(1, int(np.ceil(width0 / coarse_ds)))
    coarse = tumour.window(0, 0, ch, cw, coarse_ds, coarse=True)
    labels, count = ndimage.label(coarse, structure=np.ones((3, 3), dtype=int))
    used = 0
    for index, found in enumerate(ndimage.find_objects(labels), start=1):
        if found is None:
            continue
        ys, xs = found
        # Window at the crop level: the component's box grown by one crop on every side.
        wy0 = max(int(ys.start * coarse_ds / ds) - S, 0)
        wx0 = max(int(xs.start * coarse_ds / ds) - S, 0)
        wy1 = min(int(np.ceil(ys.stop * coarse_ds / ds)) + S, level_h)
        wx1 = min(int(np.ceil(xs.stop * coarse_ds / ds)) + S, level_w)
        if wy1 - wy0 < S or wx1 - wx0 < S:
            continue
        fine = tumour.window(wy0 * ds, wx0 * ds, wy1 - wy0, wx1 - wx0, ds)
        rows = np.clip(((wy0 + np.arange(wy1 - wy0) + 0.5) * ds / coarse_ds).astype(int), 0, ch - 1)
        cols = np.clip(((wx0 + np.arange(wx1 - wx0) + 0.5) * ds / coarse_ds).astype(int), 0, cw - 1)
        metastasis = fine & (labels[np.ix_(rows, cols)] == index)
        area = int(metastasis.sum())
        if area == 0 or area > roi_high * S * S:
            continue
        r = np.nonzero(metastasis.any(axis=1))[0]
        c = np.nonzero(metastasis.any(axis=0))[0]
        r0, r1, c0, c1 = r[0], r[-1], c[0], c[-1]
        if r1 - r0 + 1 > S or c1 - c0 + 1 > S:
            continue
        # Every crop (window coordinates) that holds the whole metastasis, and its tumour fraction.
        ty0, ty1 = max(r1 - S + 1, 0), min(r0, fine.shape[0] - S)
        tx0, tx1 = max(c1 - S + 1, 0), min(c0, fine.shape[1] - S)
        if ty1 < ty0 or tx1 < tx0:
            continue
        sums = _box_sums(fine, S)[ty0 : ty1 + 1, tx0 : tx1 + 1]
        fraction = sums / float(S * S)
        valid = np.flatnonzero((fraction > roi_low) & (fraction < roi_high))
        if valid.size == 0:
            continue
        taken = 0
        for flat in builder.rng.permutation(valid):
            dy, dx = divmod(int(flat), fraction.shape[1])
            top, left = wy0 + ty0 + dy, wx0 + tx0 + dx
            pixels = reader.read(level, top, left, S, S)
            if (pixels.max(axis=2) == 0).any():  # reaches outside the slide
                continue
            crop_mask = fine[ty0 + dy : ty0 + dy + S, tx0 + dx : tx0 + dx + S]
            crop = Crop(
                image_id=builder.next_id(f"{name}_m{index:03d}"),
                slide=name,
                group=f"{name}/m{index}",
                label="positive",
                top=int(round(top * ds)),
                left=int(round(left * ds)),
                tumour_fraction=float(fraction[dy, dx]),
                tissue_fraction=float("nan"),
            )
            builder.write(crop, pixels, crop_mask)
            taken += 1
            if taken >= per_metastasis:
                break
        used += taken > 0
    return used


class _NegativeSource:
    """Random mostly-tissue crop positions of one normal slide, drawn lazily without replacement."""

    def __init__(self, name: str, reader: SlideReader, builder: _Builder, min_tissue: float):
        self.name, self.reader, self.builder, self.min_tissue = name, reader, builder, min_tissue
        S, level = builder.size, builder.level
        self.ds = float(reader.level_downsamples[level])
        height0, width0 = reader.size
        scale = min(1.0 / 32.0, 2048.0 / max(height0, width0), 1.0 / self.ds)
        low = reader.render_view(scale)
        self.mask, self.threshold = tissue_mask(low)
        per = (height0 / low.shape[0]) / self.ds  # level pixels per tissue-mask pixel
        cells = max(1, int(S / per))  # crop side in mask pixels (rounded down)
        level_w, level_h = reader.level_dimensions[level]
        if self.mask.shape[0] < cells or self.mask.shape[1] < cells or level_h < S or level_w < S:
            self.candidates = np.zeros((0, 2), dtype=np.int64)
        else:
            fraction = _box_sums(self.mask, cells) / float(cells * cells)
            ys, xs = np.nonzero(fraction >= min_tissue)
            tops = np.minimum((ys * per).astype(np.int64), level_h - S)
            lefts = np.minimum((xs * per).astype(np.int64), level_w - S)
            self.candidates = np.stack([tops, lefts], axis=1)
        self.order = builder.rng.permutation(len(self.candidates))
        self.next = 0
        self.jitter = max(1, int(per))
        self.taken = 0

    def draw(self) -> bool:
        """Write one more negative crop; False when the slide has no qualifying position left."""
        S, level = self.builder.size, self.builder.level
        level_w, level_h = self.reader.level_dimensions[level]
        while self.next < len(self.order):
            top, left = self.candidates[self.order[self.next]]
            self.next += 1
            top = int(min(top + self.builder.rng.integers(self.jitter), level_h - S))
            left = int(min(left + self.builder.rng.integers(self.jitter), level_w - S))
            pixels = self.reader.read(level, top, left, S, S)
            if (pixels.max(axis=2) == 0).any():
                continue
            tissue = tissue_fraction(pixels, self.threshold)
            if tissue < self.min_tissue:
                continue
            crop = Crop(
                image_id=self.builder.next_id(f"{self.name}_n"),
                slide=self.name,
                group=self.name,
                label="negative",
                top=int(round(top * self.ds)),
                left=int(round(left * self.ds)),
                tumour_fraction=0.0,
                tissue_fraction=tissue,
            )
            self.builder.write(crop, pixels, np.zeros((S, S), dtype=bool))
            self.taken += 1
            return True
        return False


def assign_groups(
    counts: dict[str, int], fractions: tuple[float, float, float], rng: np.random.Generator
) -> dict[str, str]:
    """Groups -> split, in a seeded order, each to the split furthest below its share of crops.

    Not :func:`zoomin.data.stratify.stratified_split`: a group (a metastasis, a normal slide) must
    not straddle splits, and groups differ in size (up to ``crops_per_metastasis`` crops), so the
    splits are balanced by crops, not by counting groups.
    """
    total = sum(counts.values())
    filled = dict.fromkeys(SPLITS, 0)
    split: dict[str, str] = {}
    for group in [sorted(counts)[i] for i in rng.permutation(len(counts))]:
        deficits = [fractions[k] * total - filled[s] if fractions[k] > 0 else -np.inf for k, s in enumerate(SPLITS)]
        # A split that has nothing yet goes first, so small datasets still fill every split.
        empty = [k for k, s in enumerate(SPLITS) if fractions[k] > 0 and filled[s] == 0]
        choice = SPLITS[empty[0] if empty else int(np.argmax(deficits))]
        split[group] = choice
        filled[choice] += counts[group]
    return split


def _fractions(items: Sequence[float]) -> tuple[float, float, float]:
    if len(items) != 3 or any(v < 0 for v in items) or sum(items) <= 0:
        raise ConfigError(
            "construct.split_fractions", f"must be three non-negative numbers (train, val, test), got {list(items)}"
        )
    total = sum(items)
    return items[0] / total, items[1] / total, items[2] / total


def _slides(raw_dir: Path, limit: int | None) -> tuple[dict[str, Path], list[str], list[str]]:
    images_dir = raw_dir / "images"
    tifs = sorted(images_dir.glob("*.tif")) if images_dir.is_dir() else []
    files = {p.stem: p for p in tifs if camelyon16.slide_group(p.stem)}
    if not files:
        raise InputFileError(images_dir, "holds no normal_###.tif / tumor_###.tif / test_###.tif slides")
    reference_path = camelyon16.find_reference(raw_dir)
    reference = camelyon16.read_reference(reference_path) if reference_path else {}
    tumour, normal = [], []
    for name in sorted(files):
        group = camelyon16.slide_group(name)
        annotated = slides.annotation_file(raw_dir, name) is not None
        if group == "tumor" or (group == "test" and reference.get(name.lower()) == "Tumor"):
            if annotated:
                tumour.append(name)
        elif group == "normal" or (group == "test" and reference.get(name.lower()) == "Normal"):
            normal.append(name)
    if limit:
        tumour, normal = tumour[:limit], normal[:limit]
    return files, tumour, normal


def construct(
    raw_dir: str | Path,
    out_dir: str | Path,
    *,
    name: str = NAME,
    crop_size: int = 512,
    level: int = 3,
    roi_low: float = 0.1,
    roi_high: float = 0.5,
    crops_per_metastasis: int = 50,
    min_tissue_fraction: float = 0.5,
    split_fractions: Sequence[float] = (0.6, 0.2, 0.2),
    seed: int = 0,
    masks: MaskMode = "auto",
    coarse_downsample: float = 32.0,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Build NeedleCamelyon from a raw Camelyon16 folder (layout of :mod:`.camelyon16`)."""
    raw_dir = Path(raw_dir)
    size, low, high = crop_size, roi_low, roi_high
    if not 0 <= low < high <= 1:
        raise ConfigError(
            "construct.roi_low", f"roi_low/roi_high must satisfy 0 <= roi_low < roi_high <= 1, got {low}, {high}"
        )
    per_metastasis, min_tissue, coarse = crops_per_metastasis, min_tissue_fraction, coarse_downsample
    fractions = _fractions(split_fractions)
    if limit is not None and limit < 1:
        raise ConfigError("construct.limit", f"must be >= 1 (or null for all slides), got {limit}")
    files, tumour_slides, normal_slides = _slides(raw_dir, limit)
    if not tumour_slides:
        raise InputFileError(raw_dir / "annotations", "no tumour slide with an annotation (XML or *_mask.tif)")
    if not normal_slides:
        raise InputFileError(raw_dir / "images", "no normal slide to draw negatives from")
    rng = np.random.default_rng(seed)
    mpps: list[float] = []
    with staged_folder(out_dir) as stage:
        builder = _Builder(stage, level, size, rng)
        for slide in tqdm(tumour_slides, desc="needle_camelyon positives", unit="slide"):
            reader = SlideReader(files[slide])
            try:
                _check_level(reader, level)
                tumour = _tumour_mask(slide, raw_dir, reader, masks)
                if tumour is None:
                    continue
                try:
                    positive_crops(builder, slide.lower(), reader, tumour, low, high, per_metastasis, coarse)
                finally:
                    tumour.close()
                mpp = slide_mpp(reader)
                if mpp:
                    mpps.append(mpp * float(reader.level_downsamples[level]))
            finally:
                reader.close()
        positives = list(builder.crops)
        if not positives:
            raise InputFileError(
                raw_dir / "annotations",
                f"no metastasis gives a {size}x{size} crop at level {level} with tumour fraction in "
                f"({low}, {high}); try another level, crop_size or roi range",
            )
        counts: dict[str, int] = {}
        for crop in positives:
            counts[crop.group] = counts.get(crop.group, 0) + 1
        pos_split = assign_groups(counts, fractions, rng)
        for crop in positives:
            crop.split = pos_split[crop.group]
        _negatives(builder, files, normal_slides, positives, fractions, min_tissue)
        records = [
            {
                "image_id": crop.image_id,
                "path": f"images/{crop.image_id}.png",
                "label": crop.label,
                "split": crop.split,
                "mask": f"masks/{crop.image_id}.png",
            }
            for crop in builder.crops
        ]
        _write_provenance(stage / "crops.csv", builder.crops, level, size)
        log.info(
            "%s: %d positive crops from %d metastases, %d negatives",
            name,
            len(positives),
            len(counts),
            len(builder.crops) - len(positives),
        )
        common.save_constructed(
            stage, name, CLASSES, records, NAME, seed=seed, mpp=float(np.median(mpps)) if mpps else None
        )
    return records


def _check_level(reader: SlideReader, level: int) -> None:
    if not 0 <= level < reader.slide.level_count:
        raise InputFileError(
            reader.path, f"has {reader.slide.level_count} pyramid levels; level {level} does not exist"
        )


def _negatives(
    builder: _Builder,
    files: dict[str, Path],
    normal_slides: list[str],
    positives: list[Crop],
    fractions: tuple[float, float, float],
    min_tissue: float,
) -> None:
    """As many negative crops per split as positives, from that split's normal slides."""
    slide_split = assign_groups(dict.fromkeys(normal_slides, 1), fractions, builder.rng)
    for split in SPLITS:
        wanted = sum(crop.split == split for crop in positives)
        if wanted == 0:
            continue
        slides = [s for s in normal_slides if slide_split[s] == split]
        if not slides:
            log.warning("no normal slide fell in split %s; drawing its negatives from all normal slides", split)
            slides = list(normal_slides)
        sources = []
        for slide in slides:
            reader = SlideReader(files[slide])
            _check_level(reader, builder.level)
            sources.append(_NegativeSource(slide.lower(), reader, builder, min_tissue))
        made = 0
        try:
            active = list(sources)
            while made < wanted and active:
                for source in list(active):
                    if made >= wanted:
                        break
                    if source.draw():
                        builder.crops[-1].split = split
                        made += 1
                    else:
                        active.remove(source)
        finally:
            for source in sources:
                source.reader.close()
        if made < wanted:
            log.warning("split %s: only %d negative crops for %d positives (too little tissue)", split, made, wanted)


def _write_provenance(path: Path, crops: list[Crop], level: int, size: int) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(
                ["image_id", "slide", "group", "label", "split", "level", "crop_size", "top", "left",
                 "tumour_fraction", "tissue_fraction"]
            )
            for crop in crops:
                writer.writerow(
                    [crop.image_id, crop.slide, crop.group, crop.label, crop.split, level, size,
                     crop.top, crop.left, f"{crop.tumour_fraction:.4f}", f"{crop.tissue_fraction:.4f}"]
                )


# Built from the Camelyon16 slides: its download is Camelyon16's.
SOURCE = Source(NAME, "image", construct, camelyon16.download)
