"""NeedleMNIST stand-in (Appendix J, a failure case): one target digit among distractors on black.

Digits come from scikit-learn's bundled 8x8 ``load_digits`` set (1,797 digits), upscaled (default
x3, bilinear) and placed without overlap on a large black canvas. A positive image holds one digit of
``target_digit`` plus distractors of other classes; a negative image holds the same number of
digits, all distractors. Digits with an even index in the set draw train/val images, odd ones test
images, so test digits are unseen. At low resolution every digit is the same grey smudge: the signal
vanishes. With ``masks: true`` a positive image gets a mask of its target digit's pixels. Classes
[negative, positive], balanced, split train/val/test.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image

from zoomin.data.synthetic.common import Rendered, StandIn
from zoomin.data.synthetic.drawing import place_circles
from zoomin.errors import ConfigError

DEFAULTS: dict[str, Any] = {
    "n_images": 120,
    "image_size": 512,
    "target_digit": 3,
    "digit_scale": 3,  # 8x8 digits become (8*scale)x(8*scale)
    "min_digits": 3,
    "max_digits": 8,
    "masks": False,  # write a mask of the target digit's pixels for each positive image
}


def _check(params: dict[str, Any]) -> None:
    if not 0 <= params["target_digit"] <= 9:
        raise ConfigError("construct.target_digit", "must be a digit 0-9")
    if not 1 <= params["digit_scale"] <= 16:
        raise ConfigError("construct.digit_scale", "must be in 1..16")
    if not 1 <= params["min_digits"] <= params["max_digits"]:
        raise ConfigError("construct.min_digits", "need 1 <= min_digits <= max_digits")
    if params["image_size"] < 8 * params["digit_scale"] * 3:
        raise ConfigError("construct.image_size", "too small for the digits")


@lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits  # bundled with scikit-learn, no download

    data = load_digits()
    return (data.images * (255.0 / 16.0)).astype(np.uint8), data.target.astype(np.int64)


def digit_pool(split: str, wanted: bool, target: int) -> np.ndarray:
    """Indices of digits usable for ``split`` that are (``wanted``) or are not the target class."""
    images, targets = _digits()
    parity = 1 if split == "test" else 0
    index = np.arange(len(targets))
    chosen = (index % 2 == parity) & ((targets == target) == wanted)
    return index[chosen]


def render(rng: np.random.Generator, label: str, split: str, params: dict[str, Any]) -> Rendered:
    size, scale, target = int(params["image_size"]), int(params["digit_scale"]), int(params["target_digit"])
    images, _ = _digits()
    side = 8 * scale
    count = int(rng.integers(params["min_digits"], params["max_digits"] + 1))
    chosen = list(rng.choice(digit_pool(split, False, target), count, replace=True))
    if label == "positive":
        chosen[0] = int(rng.choice(digit_pool(split, True, target)))
    centres = place_circles(rng, size, size, [side * 0.75] * count, margin=2.0)
    canvas = np.zeros((size, size), dtype=np.uint8)
    mask = np.zeros((size, size), dtype=np.uint8) if params["masks"] and label == "positive" else None
    for number, (index, (cy, cx)) in enumerate(zip(chosen, centres)):
        digit = Image.fromarray(images[index]).resize((side, side), Image.Resampling.BILINEAR)
        top, left = int(cy - side / 2), int(cx - side / 2)
        region = canvas[top : top + side, left : left + side]
        pixels = np.asarray(digit)[: region.shape[0], : region.shape[1]]
        np.maximum(region, pixels, out=region)
        if mask is not None and number == 0:  # the target digit: its inked pixels
            mask[top : top + side, left : left + side][pixels > 0] = 255
    return Rendered(
        pixels=np.repeat(canvas[:, :, None], 3, axis=2),
        mask=mask,
        objects=np.array(centres[:1], dtype=float),
    )


STAND_IN = StandIn(
    kind="needle_mnist",
    defaults=DEFAULTS,
    classes=lambda params: ["negative", "positive"],
    class_weights=lambda params: [0.5, 0.5],
    split_fractions={"train": 0.6, "val": 0.2, "test": 0.2},
    render=render,
    check=_check,
)
