"""Colon-cancer stand-in (CRCHistoPhenotypes): H&E-like tiles, positive iff epithelial nuclei present.

Every image has pink tissue with scattered plain nuclei and one or two "glands": a pale lumen ringed
by a dense cluster of nuclei -- the place a low-resolution view points at, in both classes. In a
positive image the nuclei of one gland are epithelial (textured chromatin, same size and mean colour);
in a negative image every gland is a decoy of plain nuclei. By default a positive image's other glands
are epithelial too (``epithelial_fraction``), as epithelium fills whole glands in the real images.
With ``masks: true``
a positive image gets a mask of its epithelial nuclei (a disc around each, as the real dataset's
point annotations are turned into masks). Classes [negative, positive], balanced, split ``all``
(cross-validation, as in the paper).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from zoomin.data.synthetic import histology
from zoomin.data.synthetic.common import Rendered, StandIn
from zoomin.data.synthetic.drawing import disc_mask, place_circles, to_uint8
from zoomin.errors import ConfigError

DEFAULTS: dict[str, Any] = {
    "n_images": 100,
    "image_size": 500,
    "extra_glands": 4,  # up to this many glands besides the deciding one (uniform 0..extra)
    "epithelial_fraction": 1.0,  # in positives, the chance that each further gland is epithelial too
    "scatter_density": 7.0e-4,  # plain nuclei per px^2 outside glands
    "positive_fraction": 0.51,
    "masks": False,  # write a mask per positive image: a disc around each epithelial nucleus
    "mask_radius": 6.0,  # px, as the real source's masks (zoomin.data.sources.colon_cancer)
}


def _check(params: dict[str, Any]) -> None:
    if params["image_size"] < 96:
        raise ConfigError("construct.image_size", f"colon images need at least 96 px, got {params['image_size']}")
    if not 0.0 < params["positive_fraction"] < 1.0:
        raise ConfigError("construct.positive_fraction", "must be in (0, 1)")


def paint_gland(
    canvas: np.ndarray, rng: np.random.Generator, cy: float, cx: float, radius: float, textured: bool
) -> np.ndarray:
    """A lumen of ``radius`` ringed by nuclei about 9.5 px apart; returns the nucleus centres."""
    histology.paint_disk(canvas, cy, cx, radius - 4.5, histology.LUMEN, opacity=0.85)
    count = max(6, int(2 * np.pi * radius / 9.5))
    angles = np.linspace(0.0, 2 * np.pi, count, endpoint=False) + rng.uniform(0, 2 * np.pi)
    angles += rng.uniform(-0.08, 0.08, count)
    radii = radius + rng.uniform(-1.5, 1.5, count)
    centres = np.stack([cy + radii * np.sin(angles), cx + radii * np.cos(angles)], axis=1)
    histology.paint_nuclei(canvas, rng, centres, textured)
    return centres


def render(rng: np.random.Generator, label: str, split: str, params: dict[str, Any]) -> Rendered:
    size = int(params["image_size"])
    canvas = histology.tissue(rng, size, size)
    n_glands = 1 + int(rng.integers(0, params["extra_glands"] + 1))
    max_radius = min(36.0, size / 4.0)
    radii = list(rng.uniform(min(24.0, max_radius - 4), max_radius, n_glands))
    centres = place_circles(rng, size, size, [r + 6.0 for r in radii], margin=4.0)
    keep_out = [(cy, cx, r + 8.0) for (cy, cx), r in zip(centres, radii)]
    n_scatter = int(rng.poisson(params["scatter_density"] * size * size))
    scattered = histology.scatter_points(rng, size, size, n_scatter, keep_out)
    histology.paint_nuclei(canvas, rng, scattered, textured=False)
    objects = np.zeros((0, 2))
    epithelium = np.zeros((0, 2))
    for index, ((cy, cx), radius) in enumerate(zip(centres, radii)):
        deciding = index == 0
        epithelial = label == "positive" and (deciding or rng.uniform() < params["epithelial_fraction"])
        nuclei = paint_gland(canvas, rng, cy, cx, radius, textured=epithelial)
        if deciding or epithelial:  # the deciding gland's nuclei are the object, decoy or not
            objects = np.concatenate([objects, nuclei])
        if epithelial:
            epithelium = np.concatenate([epithelium, nuclei])
    mask = None
    if params["masks"] and label == "positive":  # drawn after the image: it takes no random numbers
        mask = disc_mask(size, size, epithelium, params["mask_radius"])
    return Rendered(pixels=to_uint8(canvas), mask=mask, objects=objects)


STAND_IN = StandIn(
    kind="colon",
    defaults=DEFAULTS,
    classes=lambda params: ["negative", "positive"],
    class_weights=lambda params: [1.0 - params["positive_fraction"], params["positive_fraction"]],
    split_fractions={"all": 1.0},
    render=render,
    check=_check,
)
