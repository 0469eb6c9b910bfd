"""fMoW stand-in: satellite-like terrain; the class is the fine pattern of one small structure.

Terrain of fields and soil with a few roads. Every image has one *site*: a small grey pad (20-28 px)
marked with a class-specific pattern of tiny lines/dots (period 2-4 px), plus one to three decoy
pads (generic buildings with a flat roof). All pads have the same size distribution and the same
mean darkening -- patterns are scaled by their ink fraction -- so the low-resolution view shows where
the pads are but not which pattern one carries. Classes: the first ``n_classes`` of the paper's ten
fMoW categories (default 4), balanced, split train/test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from zoomin.data.sources.fmow import CLASSES
from zoomin.data.synthetic.common import Rendered, StandIn
from zoomin.data.synthetic.drawing import gray_noise, place_circles, smooth_field, to_uint8
from zoomin.errors import ConfigError

FMOW_CLASSES = CLASSES  # the 10-class subset of the paper (Appendix E)
Pattern = Callable[[np.ndarray, np.ndarray], np.ndarray]
PATTERNS: dict[str, Pattern] = {  # ink (True) at integer pad coordinates (y, x)
    "airport": lambda y, x: y % 2 == 0,  # horizontal lines, period 2
    "amusement_park": lambda y, x: np.rint(np.hypot(y - y.mean(), x - x.mean())) % 3 == 0,  # rings
    "aquaculture": lambda y, x: (y + x) % 2 == 0,  # checkerboard
    "archaeological_site": lambda y, x: (y % 4 < 2) & (x % 4 < 2),  # 2x2 dots, period 4
    "barn": lambda y, x: x % 2 == 0,  # vertical lines, period 2
    "border_checkpoint": lambda y, x: (x + y) % 3 == 0,  # diagonal lines
    "burial_site": lambda y, x: (x - y) % 3 == 0,  # anti-diagonal lines
    "car_dealership": lambda y, x: (y % 3 == 0) & (x % 3 != 2),  # rows of short dashes
    "construction_site": lambda y, x: (y % 4 == 0) | (x % 4 == 0),  # grid
    "crop_field": lambda y, x: x % 3 == 0,  # vertical lines, period 3
}
DEFAULTS: dict[str, Any] = {
    "n_images": 120,
    "image_size": 512,
    "n_classes": 4,
    "max_decoys": 3,  # decoy pads: uniform 1..max_decoys
    "pad_min": 20,
    "pad_max": 28,
}
PAD = 172.0
DARKENING = 42.0  # mean darkening of every pad, patterned or flat


def _check(params: dict[str, Any]) -> None:
    if not 2 <= params["n_classes"] <= len(FMOW_CLASSES):
        raise ConfigError("construct.n_classes", f"must be in 2..{len(FMOW_CLASSES)}")
    if params["image_size"] < 128:
        raise ConfigError("construct.image_size", f"needs at least 128 px, got {params['image_size']}")
    if not 12 <= params["pad_min"] <= params["pad_max"]:
        raise ConfigError("construct.pad_min", "need 12 <= pad_min <= pad_max")
    if params["max_decoys"] < 1:
        raise ConfigError("construct.max_decoys", "must be at least 1")


def terrain(rng: np.random.Generator, size: int) -> np.ndarray:
    """Fields and soil (two smooth fields mixing green and brown), a few roads, fine noise."""
    green, brown = np.array([86, 112, 62], np.float32), np.array([146, 126, 96], np.float32)
    mix = (0.5 + 0.5 * np.clip(smooth_field(rng, size, size, cell=96), -1, 1))[:, :, None]
    canvas = green * (1 - mix) + brown * mix
    canvas *= 1.0 + 0.07 * smooth_field(rng, size, size, cell=24)[:, :, None]
    roads = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(roads)
    for _ in range(int(rng.integers(1, 4))):
        a, b = rng.uniform(0, size, 2), rng.uniform(0, size, 2)
        draw.line([tuple(a), tuple(b)], fill=255, width=int(rng.integers(3, 6)))
    alpha = np.asarray(roads, dtype=np.float32)[:, :, None] / 255.0
    canvas = canvas * (1 - alpha) + np.float32(128.0) * alpha
    return canvas + gray_noise(rng, size, size, 5.0)


def pad_pixels(rng: np.random.Generator, height: int, width: int, pattern: str | None) -> np.ndarray:
    """A pad whose mean darkening is exactly ``DARKENING``: flat roof, or ``pattern`` scaled by its ink."""
    base = PAD + rng.normal(0.0, 10.0)
    if pattern is None:
        darkening = np.full((height, width), DARKENING, dtype=np.float32)
    else:
        dy, dx = rng.integers(0, 12, 2)  # random phase of the pattern
        y = np.arange(height)[:, None] + dy + np.zeros((1, width), dtype=np.int64)
        x = np.arange(width)[None, :] + dx + np.zeros((height, 1), dtype=np.int64)
        ink = PATTERNS[pattern](y, x).astype(np.float32)
        darkening = ink * np.float32(DARKENING / max(ink.mean(), 1e-6))
    pad = np.float32(base) - darkening
    return np.repeat(pad[:, :, None], 3, axis=2) * np.array([1.0, 1.0, 0.97], np.float32)


def render(rng: np.random.Generator, label: str, split: str, params: dict[str, Any]) -> Rendered:
    size = int(params["image_size"])
    canvas = terrain(rng, size)
    n_decoys = int(rng.integers(1, params["max_decoys"] + 1))
    sides = rng.integers(params["pad_min"], params["pad_max"] + 1, (n_decoys + 1, 2))
    centres = place_circles(rng, size, size, [float(np.hypot(*s)) / 2 + 2 for s in sides], margin=6.0)
    objects = []
    for index, ((cy, cx), (h, w)) in enumerate(zip(centres, sides)):
        pad = pad_pixels(rng, int(h), int(w), label if index == 0 else None)
        top, left = int(cy - h / 2), int(cx - w / 2)
        region = canvas[top : top + h, left : left + w]
        region[:] = pad[: region.shape[0], : region.shape[1]] + gray_noise(rng, *region.shape[:2], 3.0)
        if index == 0:
            objects.append((cy, cx))
    return Rendered(pixels=to_uint8(canvas), objects=np.array(objects, dtype=float))


STAND_IN = StandIn(
    kind="fmow",
    defaults=DEFAULTS,
    classes=lambda params: FMOW_CLASSES[: params["n_classes"]],
    class_weights=lambda params: [1.0] * params["n_classes"],
    split_fractions={"train": 0.6, "test": 0.4},
    render=render,
    check=_check,
)
