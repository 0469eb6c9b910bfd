"""NeedleCamelyon stand-in: large H&E-like crops, positive iff a small "metastasis" region is present.

Tissue with fat vacuoles and scattered plain nuclei. Every image has one to two dense, irregular
cell regions of the same size distribution and mean colour -- visible at low resolution in both
classes. In a positive image one of them is a metastasis (textured tumour nuclei) whose area
fraction of the image lies in ``[roi_min, roi_max]`` (checked on the rasterised mask, which is
written to ``masks/``); the others, and all regions in negatives, are benign look-alikes (plain
nuclei, e.g. lymphoid aggregates). Classes [negative, positive], balanced, split train/val/test.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from zoomin.data.synthetic import histology
from zoomin.data.synthetic.common import Rendered, StandIn
from zoomin.data.synthetic.drawing import blob_extent, blob_mask, place_circles, to_uint8
from zoomin.errors import ConfigError

DEFAULTS: dict[str, Any] = {
    "n_images": 120,
    "image_size": 1000,
    "roi_min": 0.005,  # tumour area / image area, lower bound
    "roi_max": 0.02,
    "extra_regions": 1,  # up to this many benign look-alike regions besides the deciding one
    "scatter_density": 5.0e-4,
    "nucleus_spacing": 9.0,  # px between nuclei inside a region
}
REGION_TINT = np.array([176.0, 120.0, 178.0], dtype=np.float32)


def _check(params: dict[str, Any]) -> None:
    if params["image_size"] < 128:
        raise ConfigError("construct.image_size", f"needs at least 128 px, got {params['image_size']}")
    if not 0.0 < params["roi_min"] <= params["roi_max"] <= 0.25:
        raise ConfigError("construct.roi_min", "need 0 < roi_min <= roi_max <= 0.25")


def region_mask(
    rng: np.random.Generator, size: int, fraction: float, centre: tuple[float, float], bounds: tuple[float, float]
) -> np.ndarray:
    """A blob whose rasterised area fraction is within ``bounds`` (rescaled until it is)."""
    area = fraction * size * size
    sub = np.random.default_rng(rng.integers(2**63))  # the same outline for every rescaling
    state = sub.bit_generator.state
    for _ in range(8):
        sub.bit_generator.state = state
        mask = blob_mask(sub, size, size, area, *centre)
        actual = mask.mean()
        if bounds[0] <= actual <= bounds[1]:
            return mask
        area *= fraction / max(actual, 1.0 / (size * size))
    raise RuntimeError(f"could not draw a region with area fraction in {bounds}")  # pragma: no cover


def fill_region(
    canvas: np.ndarray, rng: np.random.Generator, mask: np.ndarray, spacing: float, textured: bool
) -> None:
    """Tint the region and pack it with nuclei on a jittered grid."""
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    canvas[y0:y1, x0:x1][mask[y0:y1, x0:x1]] = (
        0.55 * canvas[y0:y1, x0:x1][mask[y0:y1, x0:x1]] + 0.45 * REGION_TINT
    )
    grid = np.stack(
        np.meshgrid(np.arange(y0 + spacing / 2, y1, spacing), np.arange(x0 + spacing / 2, x1, spacing), indexing="ij"),
        axis=-1,
    ).reshape(-1, 2)
    grid = grid + rng.uniform(-1.5, 1.5, grid.shape)
    rows = np.clip(grid[:, 0].astype(np.int64), 0, mask.shape[0] - 1)
    cols = np.clip(grid[:, 1].astype(np.int64), 0, mask.shape[1] - 1)
    histology.paint_nuclei(canvas, rng, grid[mask[rows, cols]], textured)


def render(rng: np.random.Generator, label: str, split: str, params: dict[str, Any]) -> Rendered:
    size = int(params["image_size"])
    canvas = histology.tissue(rng, size, size)
    for _ in range(int(rng.poisson(30 * size * size / 1e6))):  # fat vacuoles
        y, x = rng.uniform(0, size, 2)
        histology.paint_disk(canvas, y, x, rng.uniform(6, 22), histology.LUMEN, opacity=0.9)
    n_regions = 1 + int(rng.integers(0, params["extra_regions"] + 1))
    bounds = (params["roi_min"], params["roi_max"])
    fractions = rng.uniform(*bounds, n_regions)
    extents = [blob_extent(f * size * size) + 2.0 for f in fractions]
    centres = place_circles(rng, size, size, extents, margin=6.0)
    n_scatter = int(rng.poisson(params["scatter_density"] * size * size))
    keep_out = [(cy, cx, r) for (cy, cx), r in zip(centres, extents)]
    scattered = histology.scatter_points(rng, size, size, n_scatter, keep_out)
    histology.paint_nuclei(canvas, rng, scattered, textured=False)
    tumour = None
    objects = np.zeros((0, 2))
    for index, (fraction, centre) in enumerate(zip(fractions, centres)):
        mask = region_mask(rng, size, fraction, centre, bounds)
        deciding = index == 0
        malignant = deciding and label == "positive"
        fill_region(canvas, rng, mask, params["nucleus_spacing"], textured=malignant)
        if deciding:
            objects = np.argwhere(mask)[:: max(1, int(mask.sum()) // 50)].astype(float) + 0.5
        if malignant:
            tumour = mask
    return Rendered(
        pixels=to_uint8(canvas),
        mask=None if tumour is None else (tumour.astype(np.uint8) * 255),
        objects=objects,
    )


STAND_IN = StandIn(
    kind="needle_camelyon",
    defaults=DEFAULTS,
    classes=lambda params: ["negative", "positive"],
    class_weights=lambda params: [0.5, 0.5],
    split_fractions={"train": 0.6, "val": 0.2, "test": 0.2},
    render=render,
    check=_check,
)
