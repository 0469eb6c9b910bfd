"""Traffic-signs stand-in (Swedish Traffic Signs, speed-limit subset): tiny signs in a road scene.

A road scene (sky, tree line, verges, asphalt with lane marks). Every image has one to three small
signs on poles along the roadside. A speed-limit sign is a red ring around a white disk with a
glyph in it: with ``glyph: digits`` a two-digit number drawn in a 3x5 font (``font_scale`` pixels
per font cell, every number with the same ink); with ``glyph: pattern`` a square (``pattern_side``
of the diameter) of 2-px stripes of period 5 px whose direction stands for the number (50
horizontal, 70 vertical, 80 diagonal; random phase), the same grey inside under 5- and 10-px box
filters. An image of class 50, 70 or 80 has one sign showing that number; every other sign is a
distractor: with ``distractors: speed`` another speed limit (20, 30, 60 or 90: same ring, same ink,
so at low resolution all signs look alike and only the glyphs decide), with ``distractors: other``
a warning triangle or a blue mandatory sign (as in the real images, where most signs are not speed
limits: a low-resolution view can tell that a speed limit is there, only the glyph says which).
EMPTY images have distractors only. Classes [EMPTY, 50, 70, 80], EMPTY's share ``empty_fraction``
(0.4 by default, the rest split evenly), split train/test (a validation set is carved from train later).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from zoomin.data.synthetic.common import Rendered, StandIn
from zoomin.data.synthetic.drawing import gray_noise, smooth_field, to_uint8
from zoomin.errors import ConfigError

CLASSES = ["EMPTY", "50", "70", "80"]
DISTRACTOR_NUMBERS = ["20", "30", "60", "90"]
OTHER_SIGNS = ["warning", "mandatory"]
DEFAULTS: dict[str, Any] = {
    "n_images": 160,
    "image_size": [640, 480],  # width, height
    "sign_min": 14,  # sign diameter range, px
    "sign_max": 20,
    "font_scale": 1,  # pixels per font cell; 2 needs sign_min >= 24
    "distractors": "speed",  # speed: other speed limits (20/30/60/90); other: warning and blue signs
    "max_distractors": 2,  # signs besides the deciding one (uniform 0..max)
    "empty_fraction": 0.4,
    "glyph": "digits",  # digits: the number in a 3x5 font; pattern: a fine pattern per number
    "pattern_side": 0.66,  # glyph: pattern; side of the patterned square / sign diameter
}
FONT = {  # 3x5 pixel font (rows top to bottom), one pixel per cell; every digit but 0 has 11 ink
    "0": ("111", "101", "101", "101", "111"),  # cells, so every number on a sign has 23
    "2": ("111", "001", "111", "100", "111"),
    "3": ("111", "001", "111", "001", "111"),
    "5": ("111", "100", "111", "001", "111"),
    "6": ("011", "100", "111", "101", "111"),
    "7": ("111", "111", "001", "011", "011"),
    "8": ("111", "101", "010", "101", "111"),
    "9": ("111", "101", "111", "001", "110"),
}
PATTERNS = {  # number -> ink at integer (y, x) of the glyph square: 2-px stripes of period 5 in
    # one of seven directions, so any 5 consecutive pixels along a row (or, for 50, a column) hold
    # exactly 2 ink pixels and box filters of 5 or 10 px see the same grey inside every glyph
    "50": lambda y, x: y % 5 < 2,  # horizontal
    "70": lambda y, x: x % 5 < 2,  # vertical
    "80": lambda y, x: (x + y) % 5 < 2,  # diagonal
    "20": lambda y, x: (x - y) % 5 < 2,  # anti-diagonal
    "30": lambda y, x: (x + 2 * y) % 5 < 2,
    "60": lambda y, x: (2 * x + y) % 5 < 2,
    "90": lambda y, x: (2 * x - y) % 5 < 2,
}
INK = (20, 20, 24)
SUPERSAMPLE = 4


def _check(params: dict[str, Any]) -> None:
    width, height = params["image_size"]
    if width < 160 or height < 120:
        raise ConfigError("construct.image_size", f"traffic-sign scenes need at least 160x120 px, got {width}x{height}")
    if params["distractors"] not in ("speed", "other"):
        raise ConfigError("construct.distractors", f"must be 'speed' or 'other', got {params['distractors']!r}")
    if int(params["font_scale"]) != params["font_scale"] or not 1 <= params["font_scale"] <= 4:
        raise ConfigError("construct.font_scale", f"must be an integer in 1..4, got {params['font_scale']}")
    smallest = max(13, 12 * int(params["font_scale"]))
    if not smallest <= params["sign_min"] <= params["sign_max"]:
        raise ConfigError(
            "construct.sign_min",
            f"need {smallest} <= sign_min <= sign_max for font_scale {params['font_scale']}",
        )
    if params["glyph"] not in ("digits", "pattern"):
        raise ConfigError("construct.glyph", f"must be 'digits' or 'pattern', got {params['glyph']!r}")
    if not 0.3 <= params["pattern_side"] <= 0.7:
        raise ConfigError("construct.pattern_side", f"must be in [0.3, 0.7], got {params['pattern_side']}")
    if not 0.0 < params["empty_fraction"] < 1.0:
        raise ConfigError("construct.empty_fraction", "must be in (0, 1)")


def scene(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, int, float]:
    """Sky, tree line, grass verges and a road to a vanishing point; returns (canvas, horizon, road x)."""
    horizon = int(height * rng.uniform(0.38, 0.5))
    vanish_x = width * rng.uniform(0.4, 0.6)
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    sky_top, sky_low = np.array([120, 165, 220]), np.array([200, 218, 235])
    for y in range(horizon):
        colour = sky_top + (sky_low - sky_top) * y / max(horizon - 1, 1)
        draw.line([(0, y), (width, y)], fill=tuple(int(c) for c in colour))
    draw.rectangle([0, horizon, width, height], fill=(78, 112, 58))
    road = [(vanish_x - 4, horizon), (vanish_x + 4, horizon), (width * 0.95, height), (width * 0.05, height)]
    draw.polygon(road, fill=(96, 96, 100))
    for t0 in np.arange(0.05, 1.0, 0.12):  # dashed centre line, perspective spacing
        t1 = t0 + 0.05
        y0, y1 = horizon + (height - horizon) * t0**1.6, horizon + (height - horizon) * t1**1.6
        draw.line([(vanish_x, y0), (vanish_x, y1)], fill=(225, 225, 215), width=max(1, int(6 * t1)))
    canvas = np.asarray(image, dtype=np.float32).copy()
    for _ in range(int(rng.integers(8, 16))):  # tree line: dark green blobs on the horizon
        cx, radius = rng.uniform(0, width), rng.uniform(10, 40)
        y0, x0, x1 = max(0, int(horizon - radius * 1.3)), max(0, int(cx - radius)), min(width, int(cx + radius) + 1)
        ys = np.arange(y0, min(horizon + 3, height), dtype=np.float32)[:, None] - horizon
        xs = np.arange(x0, x1, dtype=np.float32)[None, :] - cx
        inside = (ys / (radius * 1.3)) ** 2 + (xs / radius) ** 2 <= 1.0
        crown = canvas[y0 : y0 + ys.shape[0], x0:x1]
        crown[inside] = crown[inside] * 0.2 + np.array([40, 70, 40], dtype=np.float32) * 0.8
    canvas *= 1.0 + 0.08 * smooth_field(rng, height, width, cell=48)[:, :, None]
    canvas += gray_noise(rng, height, width, 4.0)
    return canvas, horizon, vanish_x


def downsampled_rgb_alpha(image: Image.Image, diameter: int) -> tuple[np.ndarray, np.ndarray]:
    """A supersampled RGBA drawing box-filtered to ``diameter`` px: un-premultiplied RGB and alpha."""
    small = np.asarray(image.resize((diameter, diameter), Image.Resampling.BOX), dtype=np.float32)
    alpha = small[:, :, 3:] / 255.0
    rgb = np.where(alpha > 0, small[:, :, :3] / np.maximum(alpha, 1e-6), 0.0)
    return rgb, alpha


def blank_sign(diameter: int) -> Image.Image:
    """A supersampled RGBA drawing of a red ring around a white disk."""
    big = diameter * SUPERSAMPLE
    image = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    ring = max(2, int(round(diameter * 0.12))) * SUPERSAMPLE
    draw.ellipse([0, 0, big - 1, big - 1], fill=(205, 30, 38, 255))
    draw.ellipse([ring, ring, big - 1 - ring, big - 1 - ring], fill=(238, 238, 232, 255))
    return image


def sign_patch(number: str, diameter: int, font_scale: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """RGB float patch and coverage alpha of a round speed-limit sign (anti-aliased by supersampling);
    each font cell is ``font_scale`` x ``font_scale`` pixels."""
    image = blank_sign(diameter)
    draw = ImageDraw.Draw(image)
    cell = font_scale * SUPERSAMPLE
    glyph_w = (3 * len(number) + len(number) - 1) * font_scale  # in pixels, aligned to the pixel grid
    x0, y0 = (diameter - glyph_w) // 2, (diameter - 5 * font_scale) // 2
    for index, digit in enumerate(number):
        for row, bits in enumerate(FONT[digit]):
            for col, bit in enumerate(bits):
                if bit == "1":
                    left = x0 * SUPERSAMPLE + (index * 4 + col) * cell
                    top = y0 * SUPERSAMPLE + row * cell
                    draw.rectangle([left, top, left + cell - 1, top + cell - 1], fill=INK + (255,))
    return downsampled_rgb_alpha(image, diameter)


def pattern_sign_patch(
    number: str, diameter: int, side_fraction: float, phase: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Like :func:`sign_patch`, with the number's fine pattern (:data:`PATTERNS`, shifted by
    ``phase``) in a centred square of ``side_fraction`` of the diameter instead of digits."""
    rgb, alpha = downsampled_rgb_alpha(blank_sign(diameter), diameter)
    side = int(diameter * side_fraction)
    start = (diameter - side) // 2
    y, x = np.mgrid[0:side, 0:side]
    ink = PATTERNS[number](y + phase[0], x + phase[1])
    rgb[start : start + side, start : start + side][ink] = INK
    return rgb, alpha


def other_sign_patch(kind: str, diameter: int) -> tuple[np.ndarray, np.ndarray]:
    """A sign that is not a speed limit: ``warning`` (red-rimmed triangle) or ``mandatory`` (blue
    disk with a white bar); same RGB/alpha form as :func:`sign_patch`."""
    big = diameter * SUPERSAMPLE
    image = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    if kind == "warning":
        rim = max(2, int(round(diameter * 0.14))) * SUPERSAMPLE
        draw.polygon([(big / 2, 0), (big - 1, big - 1), (0, big - 1)], fill=(205, 30, 38, 255))
        draw.polygon([(big / 2, rim * 1.9), (big - 1 - rim * 1.6, big - 1 - rim), (rim * 1.6, big - 1 - rim)],
                     fill=(238, 238, 232, 255))
    else:
        draw.ellipse([0, 0, big - 1, big - 1], fill=(30, 80, 180, 255))
        bar = big // 6
        draw.rectangle([big // 4, big // 2 - bar // 2, big - big // 4, big // 2 + bar // 2], fill=(238, 238, 232, 255))
    return downsampled_rgb_alpha(image, diameter)


def paint_sign(
    canvas: np.ndarray,
    rng: np.random.Generator,
    number: str,
    diameter: int,
    top: int,
    left: int,
    params: dict[str, Any],
) -> None:
    """A sign on a grey pole; lighting varies per sign."""
    height, width = canvas.shape[:2]
    pole_x = left + diameter // 2
    pole_bottom = min(height, top + diameter + int(diameter * rng.uniform(1.5, 3.0)))
    canvas[top + diameter // 2 : pole_bottom, max(pole_x - 1, 0) : min(pole_x + 1, width)] = 120.0
    if number in OTHER_SIGNS:
        rgb, alpha = other_sign_patch(number, diameter)
    elif params["glyph"] == "pattern":
        phase = (int(rng.integers(5)), int(rng.integers(5)))
        rgb, alpha = pattern_sign_patch(number, diameter, params["pattern_side"], phase)
    else:
        rgb, alpha = sign_patch(number, diameter, int(params["font_scale"]))
    rgb = rgb * rng.uniform(0.7, 1.05) + rng.normal(0.0, 4.0, rgb.shape[:2] + (1,))
    y1, x1 = min(top + diameter, height), min(left + diameter, width)
    region = canvas[top:y1, left:x1]
    a = alpha[: y1 - top, : x1 - left]
    region[:] = region * (1.0 - a) + rgb[: y1 - top, : x1 - left] * a


def render(rng: np.random.Generator, label: str, split: str, params: dict[str, Any]) -> Rendered:
    width, height = (int(v) for v in params["image_size"])
    canvas, horizon, vanish_x = scene(rng, height, width)
    numbers = [] if label == "EMPTY" else [label]
    n_distractors = int(rng.integers(0, params["max_distractors"] + 1)) + (1 if label == "EMPTY" else 0)
    pool = DISTRACTOR_NUMBERS if params["distractors"] == "speed" else OTHER_SIGNS
    numbers += [str(rng.choice(pool)) for _ in range(n_distractors)]
    objects = []
    placed: list[tuple[int, int, int]] = []
    for number in numbers:
        diameter = int(rng.integers(params["sign_min"], params["sign_max"] + 1))
        for _ in range(100):  # roadside, around the horizon, not overlapping another sign
            side = rng.integers(2)
            left = int(rng.uniform(0.02 * width, max(vanish_x - 0.15 * width - diameter, 0.03 * width))
                       if side == 0 else
                       rng.uniform(min(vanish_x + 0.15 * width, width - diameter - 2), width - diameter - 2))
            top = int(rng.uniform(max(horizon - 0.25 * height, 2), max(horizon - diameter * 0.5, 3)))
            if all(abs(top - t) > (d + diameter) / 2 + 4 or abs(left - other) > (d + diameter) / 2 + 4
                   for t, other, d in placed):
                break
        placed.append((top, left, diameter))
        paint_sign(canvas, rng, number, diameter, top, left, params)
        if number == numbers[0] and not objects:
            objects.append((top + diameter / 2, left + diameter / 2))
    return Rendered(pixels=to_uint8(canvas), objects=np.array(objects, dtype=float).reshape(-1, 2))


STAND_IN = StandIn(
    kind="traffic_signs",
    defaults=DEFAULTS,
    classes=lambda params: list(CLASSES),
    class_weights=lambda params: [params["empty_fraction"]] + [(1 - params["empty_fraction"]) / 3] * 3,
    split_fractions={"train": 0.5, "test": 0.5},
    render=render,
    check=_check,
)
