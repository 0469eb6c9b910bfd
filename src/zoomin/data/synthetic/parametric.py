"""Parametric stand-in: a tiny textured object of a set area ratio on a plain or user-given background.

The learnability sweep (docs/learnability.md) draws it at a grid of object-to-image ratios and
training-set sizes. Every image has ``regions`` candidate regions of the same area (``ratio`` of the
image each), shaded ``region_contrast`` grey levels darker than the background, so the
low-resolution view shows *where* candidates are in both classes alike. In a positive image one of
them is the object: a checkerboard of ``cue_cell``-px cells, ``cue_amplitude`` grey levels above and
below the region's own pixels. The regions are unions of whole checkerboard periods, aligned to
them, so every ``2 * cue_cell`` square of an object holds as much light as dark: a box filter whose
side is a multiple of the period (a 4x or 8x downscale of a 1-px checkerboard) erases the cue
exactly, any other a fraction of it, as the low-resolution views do. Only full resolution tells the
object from the decoys. ``region_contrast: 0`` hides the regions too (nothing at low resolution says
where to look, as in NeedleMNIST).

The background is drawn (smooth colour and brightness fields with fine noise) or, with
``background: <folder>``, a random crop of a random image of that folder (resized up when smaller
than the image), so the map can be drawn for a user's own kind of image.

Split sizes are set (``n_train``, ``n_val``, ``n_test``), each balanced. Images are numbered test
first, then validation, then training, and every label is drawn per pair of images, so with the same
seed the test images do not depend on the training-set size and a smaller training set is the start
of a larger one: the cells of a sweep differ only in what their parameters say. A mask of the object
is written for each positive (its measured area is the ratio).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from zoomin.data.synthetic.common import Rendered, StandIn
from zoomin.data.synthetic.drawing import blob_extent, gray_noise, place_circles, smooth_field, to_uint8
from zoomin.errors import ConfigError

DEFAULTS: dict[str, Any] = {
    "n_train": 64,
    "n_val": 16,
    "n_test": 64,
    "image_size": 256,
    "ratio": 0.01,  # object area / image area
    "regions": 2,  # candidate regions per image: the object (positives) and look-alike decoys
    "region_contrast": 24.0,  # grey levels the regions are darker than the background (0: invisible)
    "cue_cell": 1,  # px per checkerboard cell: the cue's period is twice this
    "cue_amplitude": 40.0,  # grey levels above and below the region's pixels
    "background": "",  # a folder of images to crop backgrounds from; empty: drawn
}
MIN_PERIODS = 5  # periods (2 x cue_cell squares) an object holds at least: a few cells of texture
MAX_COVER = 0.5  # the regions together cover at most this share of the image
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
_LABEL_STREAM = 0x1EA2  # the generators that order each pair of labels
SPLITS = ("test", "val", "train")  # the order images are numbered in


def _check(params: dict[str, Any]) -> None:
    for key in ("n_train", "n_val", "n_test"):
        if params[key] < 0 or params[key] % 2:
            raise ConfigError(f"construct.{key}", f"must be an even number >= 0 (balanced classes), got {params[key]}")
    if params["n_train"] < 2 or params["n_test"] < 2:
        key = "construct.n_train" if params["n_train"] < 2 else "construct.n_test"
        raise ConfigError(key, "needs at least 2 images (one of each class)")
    size = params["image_size"]
    if size < 32:
        raise ConfigError("construct.image_size", f"needs at least 32 px, got {size}")
    if params["cue_cell"] not in (1, 2):
        raise ConfigError("construct.cue_cell", f"must be 1 or 2 px (a period of 2-4 px), got {params['cue_cell']}")
    if params["regions"] < 1:
        raise ConfigError("construct.regions", f"needs at least 1 region (the object), got {params['regions']}")
    if not 0.0 < params["ratio"] * params["regions"] <= MAX_COVER:
        raise ConfigError(
            "construct.ratio",
            f"must be > 0 with ratio x regions <= {MAX_COVER}, got {params['ratio']} x {params['regions']}",
        )
    period = 2 * params["cue_cell"]
    if object_periods(params) < MIN_PERIODS:
        smallest = MIN_PERIODS * period**2 / size**2
        raise ConfigError(
            "construct.ratio",
            f"an object of {params['ratio']} of a {size} px image is {params['ratio'] * size**2:.1f} px, under "
            f"{MIN_PERIODS} periods of its {period} px texture; the smallest ratio at this size is {smallest:.3g}",
        )
    if not 0.0 <= params["region_contrast"] <= 128.0:
        raise ConfigError("construct.region_contrast", f"must be in [0, 128], got {params['region_contrast']}")
    if not 0.0 < params["cue_amplitude"] <= 100.0:
        raise ConfigError("construct.cue_amplitude", f"must be in (0, 100], got {params['cue_amplitude']}")
    if params["background"]:
        background_files(params["background"])  # refuses a missing or empty folder now, not mid-way


def object_periods(params: dict[str, Any]) -> int:
    """How many ``2 cue_cell``-px squares an object (and every decoy) covers: its area, rounded."""
    period = 2 * params["cue_cell"]
    return int(round(params["ratio"] * params["image_size"] ** 2 / period**2))


@lru_cache(maxsize=16)
def background_files(folder: str) -> tuple[Path, ...]:
    """The image files of a background folder, sorted (ConfigError naming ``construct.background``)."""
    path = Path(folder)
    if not path.is_dir():
        raise ConfigError("construct.background", f"{folder!r} is not a folder")
    files = tuple(sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES))
    if not files:
        raise ConfigError("construct.background", f"{folder!r} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def layout(seed: int, params: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, split) per image: test, then validation, then training images; in each split the
    labels of images 2k and 2k+1 are one negative and one positive, in an order drawn from
    ``(seed, split, k)`` alone (so a split's first images do not depend on its size)."""
    out = []
    for code, split in enumerate(SPLITS):
        for pair in range(params[f"n_{split}"] // 2):
            first = int(np.random.default_rng([_LABEL_STREAM, seed, code, pair]).integers(2))
            labels = ("negative", "positive") if first == 0 else ("positive", "negative")
            out += [(label, split) for label in labels]
    return out


def drawn_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A plain textured background: a mid-tone colour with smooth brightness and tint fields, fine noise."""
    base = rng.uniform(90.0, 170.0, 3).astype(np.float32)
    canvas = np.empty((size, size, 3), dtype=np.float32)
    canvas[:] = base
    canvas += 18.0 * smooth_field(rng, size, size, cell=48)[:, :, None]
    canvas += 8.0 * smooth_field(rng, size, size, cell=16)[:, :, None]
    canvas += np.array([6.0, -4.0, 5.0], dtype=np.float32) * smooth_field(rng, size, size, cell=96)[:, :, None]
    canvas += gray_noise(rng, size, size, 5.0)
    return canvas


def folder_background(rng: np.random.Generator, size: int, folder: str) -> np.ndarray:
    """A random ``size`` square crop of a random image of ``folder`` (scaled up first if smaller)."""
    files = background_files(folder)
    path = files[int(rng.integers(len(files)))]
    with Image.open(path) as opened:
        image = opened.convert("RGB")
    scale = size / min(image.size)
    if scale > 1.0:
        image = image.resize((int(np.ceil(image.width * scale)), int(np.ceil(image.height * scale))),
                             Image.Resampling.BICUBIC)
    top = int(rng.integers(image.height - size + 1))
    left = int(rng.integers(image.width - size + 1))
    return np.asarray(image.crop((left, top, left + size, top + size)), dtype=np.float32).copy()


def region_blocks(
    rng: np.random.Generator, grid: int, blocks: int, centre: tuple[float, float], wobble: float = 0.15
) -> np.ndarray:
    """Boolean ``grid`` x ``grid`` map of exactly ``blocks`` cells forming an irregular blob around
    ``centre`` (in cell units): the cells of lowest r / outline(theta), a star-shaped level set of
    the same wobbly outline the other stand-ins' blobs have."""
    amplitudes = rng.uniform(0.0, wobble, 3)
    phases = rng.uniform(0.0, 2 * np.pi, 3)
    ys = np.arange(grid, dtype=np.float64)[:, None] + 0.5 - centre[0]
    xs = np.arange(grid, dtype=np.float64)[None, :] + 0.5 - centre[1]
    theta = np.arctan2(ys, xs)
    outline = 1.0 + sum(a * np.cos(k * theta + p) for k, a, p in zip((2, 3, 4), amplitudes, phases))
    level = np.hypot(ys, xs) / outline
    chosen = np.argsort(level, axis=None, kind="stable")[:blocks]
    cells = np.zeros(grid * grid, dtype=bool)
    cells[chosen] = True
    return cells.reshape(grid, grid)


def paint_region(
    canvas: np.ndarray, mask: np.ndarray, contrast: float, amplitude: int, cell: int, sign: int
) -> None:
    """Darken the region by ``contrast``, squeeze it into [amplitude, 255 - amplitude] (so the
    texture is never clipped and keeps a zero mean), round it, then add ``sign`` (+1 or -1) times a
    checkerboard of ``cell``-px cells and height ``amplitude``; ``sign`` 0 adds none (a decoy, which
    gets the same darkening, squeeze and rounding: only the checkerboard differs)."""
    rows, cols = np.nonzero(mask)
    inside = np.clip(canvas[rows, cols] - contrast, 0.0, 255.0)
    inside = np.rint(amplitude + inside * (255.0 - 2 * amplitude) / 255.0)
    if sign:
        checker = ((rows // cell + cols // cell) % 2 * 2 - 1) * (sign * amplitude)
        inside += checker[:, None].astype(np.float32)
    canvas[rows, cols] = inside


def render(rng: np.random.Generator, label: str, split: str, params: dict[str, Any]) -> Rendered:
    size = int(params["image_size"])
    if params["background"]:
        canvas = folder_background(rng, size, params["background"])
    else:
        canvas = drawn_background(rng, size)
    period = 2 * int(params["cue_cell"])
    grid = size // period  # whole periods only: a region never holds half a period
    blocks = object_periods(params)
    extent = blob_extent(blocks) + 1.0  # in periods
    centres = place_circles(rng, grid, grid, [extent] * int(params["regions"]), margin=1.0)
    amplitude = int(round(params["cue_amplitude"]))
    contrast, cell = float(params["region_contrast"]), int(params["cue_cell"])
    sign = 1 if rng.integers(2) else -1  # the checkerboard's phase
    mask = None
    objects = np.zeros((0, 2))
    for index, centre in enumerate(centres):
        cells = region_blocks(rng, grid, blocks, centre)
        region = np.zeros((size, size), dtype=bool)
        region[: grid * period, : grid * period] = np.kron(cells, np.ones((period, period), dtype=bool))
        deciding = index == 0
        is_object = deciding and label == "positive"
        paint_region(canvas, region, contrast, amplitude, cell, sign if is_object else 0)
        if deciding:  # the object, or in a negative the decoy in its place
            objects = np.argwhere(region)[:: max(1, int(region.sum()) // 50)].astype(float) + 0.5
        if is_object:
            mask = region.astype(np.uint8) * 255
    return Rendered(pixels=to_uint8(canvas), mask=mask, objects=objects)


STAND_IN = StandIn(
    kind="parametric",
    defaults=DEFAULTS,
    classes=lambda params: ["negative", "positive"],
    class_weights=lambda params: [0.5, 0.5],
    split_fractions={split: 1.0 / len(SPLITS) for split in SPLITS},  # unused: ``layout`` sets the sizes
    render=render,
    check=_check,
    layout=layout,
)
