"""What a synthetic whole slide holds, before any pixel is drawn: its parameters and its layout.

A slide is glass with one to ``sections`` tissue sections (wobbly ellipses) covering about
``tissue_fraction`` of it. Inside the tissue lie ``regions_min``..``regions_max`` dense cellular
regions (wobbly discs of ``region_radius`` px): lymphoid follicles, and in a positive slide one to
``tumours`` of them are metastases instead. Both kinds are drawn from the same size distribution and
look the same at low resolution; only their nuclei differ (:mod:`zoomin.data.synthetic.slide_tiles`).
Every outline is a polygon in level-0 pixels (an :class:`~zoomin.data.asap_xml.Polygon`), so the
pixels, the ASAP XML annotation and the constructed mask all come from the same vertices.

Metastases are kept below ``tumour_max_fraction`` of the tissue area (shrunk about their centre in
the rare slide where the drawn sizes would exceed it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, get_type_hints

import numpy as np

from zoomin.data.asap_xml import Polygon, rasterise
from zoomin.data.options import coerce_value, refuse_unknown
from zoomin.data.synthetic.drawing import place_circles
from zoomin.errors import ConfigError

SECTION_VERTICES = 160
REGION_VERTICES = 48
SECTION_WOBBLE = 0.08  # amplitude of each of the outline's harmonics, relative to the radius
REGION_WOBBLE = 0.12
AREA_CHECK_DOWNSAMPLE = 64  # tissue area is measured on the sections rasterised at 1/64


@dataclass(frozen=True)
class SlideParams:
    """How one synthetic slide is drawn (level-0 pixels unless said otherwise)."""

    width: int = 32768
    height: int = 32768
    tile: int = 256  # TIFF tile side; also the side of the texture tiles the tissue is built from
    quality: int = 80  # JPEG quality of every tile
    mpp: float = 1.0  # microns per level-0 pixel written to the TIFF (about a 10x scan)
    min_level_side: int = 512  # pyramid levels halve until the longer side is at most this
    tissue_fraction: float = 0.1
    sections: int = 2
    regions_min: int = 2
    regions_max: int = 4
    region_radius_min: float = 200.0
    region_radius_max: float = 320.0
    tumours: int = 2
    tumour_max_fraction: float = 0.005
    nucleus_spacing: float = 9.0
    bank_size: int = 16  # texture tiles drawn per kind (each used in 8 orientations)

    def check(self, section: str = "download") -> None:
        """Raise a ConfigError naming ``<section>.<field>`` for a value that cannot make a slide."""

        def fail(name: str, problem: str) -> None:
            raise ConfigError(f"{section}.{name}", problem)

        if self.tile < 16 or self.tile % 16:
            fail("tile", f"must be a multiple of 16 (JPEG 4:2:0 blocks), at least 16, got {self.tile}")
        if self.tile & (self.tile - 1):
            fail("tile", f"must be a power of two (each pyramid level halves it), got {self.tile}")
        for name in ("width", "height"):
            if getattr(self, name) < 4 * self.tile:
                fail(name, f"must be at least 4 tiles ({4 * self.tile} px), got {getattr(self, name)}")
        if not 1 <= self.quality <= 100:
            fail("quality", f"JPEG quality must lie in 1..100, got {self.quality}")
        if not self.mpp > 0:
            fail("mpp", f"must be positive, got {self.mpp}")
        if self.min_level_side < 1:
            fail("min_level_side", f"must be at least 1, got {self.min_level_side}")
        if not 0.01 <= self.tissue_fraction <= 0.5:
            fail("tissue_fraction", f"must lie in [0.01, 0.5], got {self.tissue_fraction}")
        if self.sections < 1:
            fail("sections", f"needs at least one tissue section, got {self.sections}")
        if not 1 <= self.regions_min <= self.regions_max:
            fail("regions_min", f"need 1 <= regions_min <= regions_max, got {self.regions_min}, {self.regions_max}")
        if not 4 * self.nucleus_spacing <= self.region_radius_min <= self.region_radius_max:
            fail(
                "region_radius_min",
                f"need {4 * self.nucleus_spacing:g} (4 nuclei) <= region_radius_min <= region_radius_max, "
                f"got {self.region_radius_min}, {self.region_radius_max}",
            )
        if not 1 <= self.tumours <= self.regions_min:
            fail("tumours", f"must lie in 1..regions_min ({self.regions_min}), got {self.tumours}")
        if not 0 < self.tumour_max_fraction < 0.05:
            fail("tumour_max_fraction", f"must lie in (0, 0.05), got {self.tumour_max_fraction}")
        if not 5.0 <= self.nucleus_spacing <= 40.0:
            fail("nucleus_spacing", f"must lie in [5, 40] px, got {self.nucleus_spacing}")
        if self.bank_size < 1:
            fail("bank_size", f"must be at least 1, got {self.bank_size}")
        section_radius = np.sqrt(self.tissue_fraction * self.width * self.height / (np.pi * self.sections))
        if 2.5 * self.region_radius_max > section_radius * (1 - 4 * SECTION_WOBBLE) * 0.6:
            fail(
                "region_radius_max",
                f"regions of {self.region_radius_max:g} px do not fit in tissue sections of about "
                f"{section_radius:.0f} px radius; make the slide larger or the regions smaller",
            )

    @classmethod
    def from_options(cls, options: Mapping[str, Any], section: str) -> SlideParams:
        """The parameters from config or command-line ``options`` (converted to each field's type;
        an unknown or bad one is a ConfigError naming ``<section>.<key>``), checked."""
        names = [item.name for item in fields(cls)]
        refuse_unknown(options, names, section, "the synthetic slides")
        hints = get_type_hints(cls)
        params = cls(**{key: coerce_value(f"{section}.{key}", value, hints[key]) for key, value in options.items()})
        params.check(section)
        return params

    def levels(self) -> list[tuple[int, int]]:
        """(width, height) of each pyramid level: level 0, then halvings until the longer side is at
        most ``min_level_side`` (and a level-k tile still covers whole texture pixels)."""
        sizes = [(self.width, self.height)]
        while max(sizes[-1]) > self.min_level_side and (1 << len(sizes)) <= self.tile:
            k = len(sizes)
            sizes.append((max(1, self.width >> k), max(1, self.height >> k)))
        return sizes


@dataclass(frozen=True)
class SlideLayout:
    """The polygons of one slide: tissue sections, benign follicles and metastases (level-0 px)."""

    width: int
    height: int
    sections: tuple[Polygon, ...]
    follicles: tuple[Polygon, ...]
    tumours: tuple[Polygon, ...]
    tissue_area: float  # level-0 px^2 of the union of the sections

    @property
    def tumour_fraction(self) -> float:
        """Area of the metastases as a fraction of the tissue area."""
        return sum(polygon_area(p.points) for p in self.tumours) / max(self.tissue_area, 1.0)


def polygon_area(points: np.ndarray) -> float:
    """Area of a simple polygon (shoelace formula), in px^2."""
    x, y = points[:, 0], points[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)


def wobbly_outline(
    rng: np.random.Generator,
    cy: float,
    cx: float,
    radius: float,
    vertices: int,
    wobble: float,
    aspect: float = 1.0,
    angle: float = 0.0,
) -> np.ndarray:
    """(vertices, 2) x/y points of ``r(t) = radius (1 + sum_k a_k cos(k t + p_k))``, k = 2..4, squeezed
    to ``aspect`` along one axis and rotated by ``angle``."""
    amplitudes = rng.uniform(0.0, wobble, 3)
    phases = rng.uniform(0.0, 2 * np.pi, 3)
    t = np.linspace(0.0, 2 * np.pi, vertices, endpoint=False)
    r = radius * (1.0 + sum(a * np.cos(k * t + p) for k, a, p in zip((2, 3, 4), amplitudes, phases)))
    u, v = r * np.cos(t), r * np.sin(t) * aspect
    x = cx + u * np.cos(angle) - v * np.sin(angle)
    y = cy + u * np.sin(angle) + v * np.cos(angle)
    return np.stack([x, y], axis=1)


def _sections(rng: np.random.Generator, params: SlideParams) -> list[Polygon]:
    count = int(rng.integers(1, params.sections + 1))
    area = params.tissue_fraction * params.width * params.height * rng.uniform(0.85, 1.15)
    shares = rng.uniform(0.6, 1.4, count)
    aspects = rng.uniform(0.55, 1.0, count)
    radii = np.sqrt(area * shares / shares.sum() / (np.pi * aspects))
    reach = [float(r * (1 + 3 * SECTION_WOBBLE)) for r in radii]
    centres = place_circles(rng, params.height, params.width, reach, margin=params.tile)
    polygons = []
    for index, ((cy, cx), radius, aspect) in enumerate(zip(centres, radii, aspects)):
        points = wobbly_outline(
            rng, cy, cx, radius, SECTION_VERTICES, SECTION_WOBBLE, aspect=aspect, angle=rng.uniform(0, np.pi)
        )
        points[:, 0] = np.clip(points[:, 0], 0, params.width - 1)
        points[:, 1] = np.clip(points[:, 1], 0, params.height - 1)
        polygons.append(Polygon(f"section {index}", "tissue", False, points))
    return polygons


def _clearance(points: np.ndarray, x: float, y: float) -> float:
    """Distance from (x, y) to the outline ``points``, negative outside it (even-odd rule)."""
    start, end = points, np.roll(points, -1, axis=0)
    edge = end - start
    t = np.clip(((x - start[:, 0]) * edge[:, 0] + (y - start[:, 1]) * edge[:, 1]) / (edge**2).sum(axis=1), 0, 1)
    distance = float(np.hypot(start[:, 0] + t * edge[:, 0] - x, start[:, 1] + t * edge[:, 1] - y).min())
    crosses = (start[:, 1] > y) != (end[:, 1] > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        at = start[:, 0] + (y - start[:, 1]) * edge[:, 0] / edge[:, 1]
    inside = int(np.count_nonzero(crosses & (x < at))) % 2 == 1
    return distance if inside else -distance


def _region_centres(
    rng: np.random.Generator, sections: list[Polygon], radii: np.ndarray, tries: int = 400
) -> list[tuple[float, float]]:
    """Centres anywhere in the sections (area-weighted), each region wholly inside its section with a
    margin, apart from the others where possible."""
    areas = np.array([polygon_area(s.points) for s in sections])
    placed: list[tuple[float, float, float]] = []
    for radius in radii:
        reach = radius * (1 + 3 * REGION_WOBBLE) + 2.0
        best, best_gap = None, -np.inf
        for _ in range(tries):
            points = sections[int(rng.choice(len(sections), p=areas / areas.sum()))].points
            x0, y0 = points.min(axis=0)
            x1, y1 = points.max(axis=0)
            cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
            if _clearance(points, cx, cy) < 1.5 * reach:
                continue
            gap = min((np.hypot(cy - y, cx - x) - reach - r for y, x, r in placed), default=np.inf)
            if gap > 2 * reach:
                best = (cy, cx)
                break
            if gap > best_gap:
                best, best_gap = (cy, cx), gap
        if best is None:
            raise ConfigError("download.region_radius_max", "regions do not fit inside the tissue sections")
        placed.append((best[0], best[1], reach))
    return [(y, x) for y, x, _ in placed]


def tissue_area(sections: list[Polygon], width: int, height: int) -> float:
    """Level-0 px^2 covered by the union of the sections (measured on a 1/64 raster)."""
    down = AREA_CHECK_DOWNSAMPLE
    mask = rasterise(sections, -(-height // down), -(-width // down), downsample=float(down))
    return float(mask.sum()) * down * down


def draw_layout(rng: np.random.Generator, positive: bool, params: SlideParams) -> SlideLayout:
    """The layout of one slide: the same draws for both classes, metastases only if ``positive``."""
    sections = _sections(rng, params)
    count = int(rng.integers(params.regions_min, params.regions_max + 1))
    radii = rng.uniform(params.region_radius_min, params.region_radius_max, count)
    centres = _region_centres(rng, sections, radii)
    outlines = [
        wobbly_outline(rng, cy, cx, radius, REGION_VERTICES, REGION_WOBBLE, aspect=rng.uniform(0.7, 1.0),
                       angle=rng.uniform(0, np.pi))
        for (cy, cx), radius in zip(centres, radii)
    ]
    n_tumours = int(rng.integers(1, params.tumours + 1))
    malignant = set(rng.choice(count, size=n_tumours, replace=False).tolist()) if positive else set()
    area = tissue_area(sections, params.width, params.height)
    tumour_area = sum(polygon_area(outlines[i]) for i in malignant)
    if tumour_area > params.tumour_max_fraction * area:
        shrink = np.sqrt(params.tumour_max_fraction * area / tumour_area) * 0.999
        for i in malignant:
            centre = outlines[i].mean(axis=0)
            outlines[i] = centre + (outlines[i] - centre) * shrink
    follicles = tuple(
        Polygon(f"follicle {i}", "follicle", False, outline) for i, outline in enumerate(outlines) if i not in malignant
    )
    tumours = tuple(
        Polygon(f"Annotation {n}", "Tumor", False, outlines[i]) for n, i in enumerate(sorted(malignant))
    )
    return SlideLayout(params.width, params.height, tuple(sections), follicles, tumours, area)
