"""Makers of small files in the Camelyon16 on-disk formats, for the slide tests.

* :func:`make_slide` -- a tiled pyramidal RGB TIFF (levels as successive IFDs, reduced levels with
  ``subfiletype=1``) that OpenSlide opens as ``generic-tiff``: glass background, an elliptic
  "tissue" section with a fine texture, and purple "tumour" regions. Returns the level-0 pixels.
* :func:`write_asap_xml` -- ASAP XML polygons; :data:`TUMOUR_POLYGONS` matches :func:`make_slide`.
* :func:`write_reference_csv` -- Camelyon16 ``reference.csv`` with or without a header.
* :func:`make_mask_tiff` -- a Camelyon-like single-channel pyramidal mask TIFF (0/1 values).
* :func:`make_flat_tiff` / :func:`make_truncated_tiff` -- a non-pyramidal and a truncated TIFF.
* :func:`make_camelyon_raw` -- a raw folder laid out like ``s3://camelyon-dataset/CAMELYON16/``.

Level 0 is small (default 2048 x 2048, 3 levels) and lossless (deflate), so tests can compare
pixels exactly.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tifffile

BACKGROUND = (238, 236, 240)
TUMOUR_COLOUR = (150, 60, 160)
MPP = 0.25

# Two metastases in level-0 pixels (x0, y0, x1, y1): A is a plain square, B a square with a hole.
# Expressed as ASAP polygons: (name, group, [(x, y), ...]).
TUMOUR_POLYGONS = [
    ("Annotation 0", "_0", [(600, 700), (680, 700), (680, 780), (600, 780)]),
    ("Annotation 1", "Tumor", [(1200, 1100), (1320, 1100), (1320, 1220), (1200, 1220)]),
    ("Annotation 2", "_2", [(1240, 1140), (1280, 1140), (1280, 1180), (1240, 1180)]),
]


@dataclass
class SlideTruth:
    """What a fixture slide holds: level-0 pixels and the boolean tumour mask at level 0."""

    path: Path
    pixels: np.ndarray
    tumour: np.ndarray
    tissue: np.ndarray
    levels: list[tuple[int, int]] = field(default_factory=list)


def polygon_mask(height: int, width: int, polygons: list) -> np.ndarray:
    """Level-0 mask of axis-aligned rectangle polygons (tumour groups set, ``_2`` cleared)."""
    mask = np.zeros((height, width), dtype=bool)
    for excluded in (False, True):
        for _, group, points in polygons:
            if (group == "_2") != excluded:
                continue
            xs, ys = [p[0] for p in points], [p[1] for p in points]
            mask[min(ys) : max(ys), min(xs) : max(xs)] = not excluded
    return mask


def slide_pixels(height: int, width: int, tumour: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Level-0 RGB pixels (background, textured tissue ellipse, tumour) and the tissue mask."""
    y, x = np.mgrid[0:height, 0:width]
    tissue = ((y - height / 2) / (0.42 * height)) ** 2 + ((x - width / 2) / (0.36 * width)) ** 2 < 1
    texture = ((x ^ y) & 15).astype(np.int16)
    pixels = np.empty((height, width, 3), dtype=np.uint8)
    pixels[...] = BACKGROUND
    pink = np.stack([225 - texture, 140 + texture, 195 + texture // 2], axis=-1).astype(np.uint8)
    pixels[tissue] = pink[tissue]
    if tumour is not None:
        purple = np.stack(
            [TUMOUR_COLOUR[0] + texture, TUMOUR_COLOUR[1] + texture, TUMOUR_COLOUR[2] + texture], axis=-1
        ).astype(np.uint8)
        pixels[tumour] = purple[tumour]
    return pixels, tissue


def _halve(level: np.ndarray) -> np.ndarray:
    h, w = level.shape[0] // 2, level.shape[1] // 2
    trimmed = level[: 2 * h, : 2 * w].astype(np.float32)
    shape = (h, 2, w, 2) + level.shape[2:]
    return np.round(trimmed.reshape(shape).mean(axis=(1, 3))).astype(np.uint8)


def write_pyramid(
    path: Path,
    level0: np.ndarray,
    levels: int = 3,
    tile: int = 256,
    compression: str = "zlib",
    mpp: float | None = MPP,
) -> list[tuple[int, int]]:
    """Write ``level0`` (HxWx3 or HxW uint8) and ``levels - 1`` halvings as a tiled pyramidal TIFF."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sizes = []
    photometric = "rgb" if level0.ndim == 3 else "minisblack"
    with tifffile.TiffWriter(path) as tif:
        current = level0
        for index in range(levels):
            extra = {}
            if mpp is not None:
                per_cm = 1e4 / (mpp * 2**index)
                extra = {"resolution": (per_cm, per_cm), "resolutionunit": "CENTIMETER"}
            tif.write(
                current,
                tile=(tile, tile),
                compression=compression,
                photometric=photometric,
                subfiletype=0 if index == 0 else 1,
                metadata=None,
                **extra,
            )
            sizes.append((current.shape[1], current.shape[0]))
            current = _halve(current)
    return sizes


def make_slide(
    path: Path,
    size: int = 2048,
    levels: int = 3,
    tumour_polygons: list | None = None,
    compression: str = "zlib",
) -> SlideTruth:
    """A Camelyon-like pyramidal slide; tumour regions where ``tumour_polygons`` say."""
    tumour = polygon_mask(size, size, tumour_polygons) if tumour_polygons else np.zeros((size, size), bool)
    pixels, tissue = slide_pixels(size, size, tumour)
    sizes = write_pyramid(Path(path), pixels, levels=levels, compression=compression)
    return SlideTruth(Path(path), pixels, tumour, tissue, sizes)


def write_asap_xml(path: Path, polygons: list) -> Path:
    """ASAP XML with one ``Annotation`` per ``(name, group, points)``."""
    lines = ['<?xml version="1.0"?>', "<ASAP_Annotations>", "\t<Annotations>"]
    for name, group, points in polygons:
        lines.append(f'\t\t<Annotation Name="{name}" Type="Polygon" PartOfGroup="{group}" Color="#F4FA58">')
        lines.append("\t\t\t<Coordinates>")
        for order, (x, y) in enumerate(points):
            lines.append(f'\t\t\t\t<Coordinate Order="{order}" X="{x}" Y="{y}" />')
        lines += ["\t\t\t</Coordinates>", "\t\t</Annotation>"]
    groups = sorted({group for _, group, _ in polygons})
    lines.append("\t</Annotations>")
    lines.append("\t<AnnotationGroups>")
    for group in groups:
        lines.append(f'\t\t<Group Name="{group}" PartOfGroup="None" Color="#64FE2E"><Attributes /></Group>')
    lines += ["\t</AnnotationGroups>", "</ASAP_Annotations>"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def write_reference_csv(path: Path, rows: list[tuple[str, str]], header: bool = True) -> Path:
    """Camelyon16 reference: ``image,class,type,location``; the mirror's copy has no header."""
    lines = ["image,class,type,location"] if header else []
    for image, label in rows:
        if label == "Tumor":
            lines.append(f"{image},Tumor,Macro,Metastases")
        else:
            lines.append(f"{image},Normal,,")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def make_mask_tiff(path: Path, mask: np.ndarray, levels: int = 3) -> Path:
    """Camelyon-like mask: single-channel uint8 pyramidal TIFF, 1 = tumour."""
    write_pyramid(Path(path), mask.astype(np.uint8), levels=levels, mpp=MPP)
    return path


def make_flat_tiff(path: Path, size: int = 1024) -> Path:
    """A single-level (non-pyramidal) tiled RGB TIFF."""
    pixels, _ = slide_pixels(size, size)
    write_pyramid(Path(path), pixels, levels=1)
    return path


def make_truncated_tiff(path: Path, size: int = 1024, keep: float = 0.4) -> Path:
    """A pyramidal TIFF cut short (a download that stopped half way)."""
    full = Path(path).with_suffix(".full.tif")
    make_slide(full, size=size, levels=3)
    data = full.read_bytes()
    full.unlink()
    Path(path).write_bytes(data[: int(len(data) * keep)])
    return path


def md5(path: Path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def make_camelyon_raw(
    root: Path,
    n_normal: int = 3,
    n_tumour: int = 2,
    test_labels: tuple[str, ...] = ("Tumor", "Normal"),
    size: int = 1024,
    reference_header: bool = True,
    masks: bool = True,
) -> dict[str, SlideTruth]:
    """A raw folder like ``CAMELYON16/``: images/, annotations/, masks/, evaluation/, checksums.md5.

    Tumour slides (training ``tumor_###`` and test slides labelled Tumor) carry
    :data:`TUMOUR_POLYGONS` scaled to ``size``.
    """
    root = Path(root)
    factor = size / 2048
    polygons = [
        (name, group, [(round(x * factor), round(y * factor)) for x, y in points]) for name, group, points in TUMOUR_POLYGONS
    ]
    truths: dict[str, SlideTruth] = {}
    names = [f"normal_{i:03d}" for i in range(1, n_normal + 1)]
    names += [f"tumor_{i:03d}" for i in range(1, n_tumour + 1)]
    names += [f"test_{i:03d}" for i in range(1, len(test_labels) + 1)]
    tumour_names = {f"tumor_{i:03d}" for i in range(1, n_tumour + 1)}
    tumour_names |= {f"test_{i:03d}" for i, label in enumerate(test_labels, 1) if label == "Tumor"}
    for name in names:
        is_tumour = name in tumour_names
        truth = make_slide(root / "images" / f"{name}.tif", size=size, tumour_polygons=polygons if is_tumour else None)
        truths[name] = truth
        if is_tumour:
            write_asap_xml(root / "annotations" / f"{name}.xml", polygons)
            if masks:
                make_mask_tiff(root / "masks" / f"{name}_mask.tif", truth.tumour)
    rows = [(f"Test_{i:03d}", label) for i, label in enumerate(test_labels, 1)]
    write_reference_csv(root / "evaluation" / "reference.csv", rows, header=reference_header)
    lines = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        lines.append(f"{md5(path)}  CAMELYON16/{path.relative_to(root).as_posix()}")
    (root / "checksums.md5").write_text("\n".join(lines) + "\n")
    return truths
