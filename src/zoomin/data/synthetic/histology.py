"""H&E-like drawing for the histology stand-ins (colon, NeedleCamelyon): pink tissue, purple nuclei.

Two nucleus types share size, shape and mean colour: *plain* nuclei have smooth chromatin; *textured*
nuclei (the class-deciding ones: epithelial nuclei in colon, tumour cells in NeedleCamelyon) carry a
one-pixel checkerboard of light and dark chromatin of zero mean. Any downscaling that averages two
pixels or more (the low-resolution views) erases the difference; at full resolution it is obvious.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from zoomin.data.synthetic.drawing import (
    blend,
    ellipse_alpha,
    gray_noise,
    smooth_field,
    window,
)

TISSUE = np.array([232.0, 176.0, 206.0], dtype=np.float32)
FIBRE = np.array([212.0, 136.0, 182.0], dtype=np.float32)
NUCLEUS = np.array([104.0, 54.0, 134.0], dtype=np.float32)
LUMEN = np.array([246.0, 232.0, 242.0], dtype=np.float32)
CHROMATIN_AMPLITUDE = 48.0


def tissue(rng: np.random.Generator, height: int, width: int, fibres_per_mpx: float = 60.0) -> np.ndarray:
    """Pink eosin background: smooth stain variation, thin darker fibres, fine noise."""
    shade = smooth_field(rng, height, width, cell=64)[:, :, None]
    tint = smooth_field(rng, height, width, cell=128)[:, :, None]
    canvas = np.empty((height, width, 3), dtype=np.float32)
    canvas[:] = TISSUE
    canvas += 10.0 * shade
    canvas += np.array([0.0, 8.0, 4.0], dtype=np.float32) * tint
    fibres = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(fibres)
    for _ in range(int(rng.poisson(fibres_per_mpx * height * width / 1e6))):
        y, x = rng.uniform(0, height), rng.uniform(0, width)
        length, angle = rng.uniform(20, 90), rng.uniform(0, np.pi)
        points = [(x + t * length * np.cos(angle), y + t * length * np.sin(angle) + 6 * np.sin(3 * t))
                  for t in np.linspace(0.0, 1.0, 6)]
        draw.line(points, fill=int(rng.integers(90, 200)), width=int(rng.integers(1, 3)))
    fibre = np.asarray(fibres)
    rows, cols = np.nonzero(fibre)
    alpha = fibre[rows, cols].astype(np.float32)[:, None] / 255.0
    canvas[rows, cols] = canvas[rows, cols] * (1.0 - alpha) + FIBRE * alpha
    canvas += gray_noise(rng, height, width, 5.0)
    return canvas


def paint_disk(
    canvas: np.ndarray, cy: float, cx: float, radius: float, colour: np.ndarray, opacity: float
) -> None:
    """A soft-edged disk of ``colour`` (lumen, fat vacuole)."""
    win = window(canvas.shape, cy, cx, int(np.ceil(radius)) + 2)
    if win is None:
        return
    rows, cols, ys, xs = win
    blend(canvas, rows, cols, opacity * ellipse_alpha(ys, xs, radius, radius, 0.0), colour)


NUCLEUS_HALF = 7  # window half-size: covers the largest nucleus (4.8 px) plus anti-aliasing


def paint_nuclei(
    canvas: np.ndarray, rng: np.random.Generator, centres: np.ndarray, textured: np.ndarray | bool
) -> None:
    """Nuclei (radius 3.2-4.8 px, slightly elliptic) at ``centres`` (N, 2), plain or textured.

    Both types draw the same random numbers and share size, shape and mean colour; textured ones add
    a zero-mean one-pixel checkerboard of chromatin.
    """
    centres = np.asarray(centres, dtype=np.float64).reshape(-1, 2)
    n = len(centres)
    if n == 0:
        return
    textured = np.broadcast_to(np.asarray(textured, dtype=bool), (n,))
    radius = rng.uniform(3.2, 4.8, n)
    ry, rx = radius, radius * rng.uniform(0.75, 1.0, n)
    angle = rng.uniform(0.0, np.pi, n)
    colour = NUCLEUS + rng.normal(0.0, 8.0, (n, 3)).astype(np.float32)
    grain = rng.uniform(0.7, 1.0, n).astype(np.float32)
    side = 2 * NUCLEUS_HALF + 1
    noise = rng.standard_normal((n, side, side), dtype=np.float32) * np.float32(4.0)
    top = np.floor(centres[:, 0]).astype(np.int64) - NUCLEUS_HALF
    left = np.floor(centres[:, 1]).astype(np.int64) - NUCLEUS_HALF
    offsets = np.arange(side)
    ys = (top[:, None] + offsets[None, :] + 0.5 - centres[:, :1])[:, :, None]  # (n, side, 1)
    xs = (left[:, None] + offsets[None, :] + 0.5 - centres[:, 1:])[:, None, :]  # (n, 1, side)
    cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    u, v = cos * ys + sin * xs, -sin * ys + cos * xs
    distance = np.sqrt((u / ry[:, None, None]) ** 2 + (v / rx[:, None, None]) ** 2)
    alpha = np.clip((1.0 - distance) * rx[:, None, None] + 0.5, 0.0, 1.0).astype(np.float32)
    parity = ((top[:, None, None] + offsets[None, :, None]) + (left[:, None, None] + offsets[None, None, :])) % 2
    chromatin = (parity * 2 - 1).astype(np.float32) * (CHROMATIN_AMPLITUDE * grain * textured)[:, None, None]
    fill = colour[:, None, None, :] + (noise + chromatin)[:, :, :, None]
    height, width = canvas.shape[:2]
    for i in range(n):
        y0, x0 = max(top[i], 0), max(left[i], 0)
        y1, x1 = min(top[i] + side, height), min(left[i] + side, width)
        if y1 <= y0 or x1 <= x0:
            continue
        wy, wx = slice(y0 - top[i], y1 - top[i]), slice(x0 - left[i], x1 - left[i])
        blend(canvas, slice(y0, y1), slice(x0, x1), alpha[i, wy, wx], fill[i, wy, wx])


def scatter_points(
    rng: np.random.Generator,
    height: int,
    width: int,
    count: int,
    keep_out: list[tuple[float, float, float]],
) -> np.ndarray:
    """(N, 2) uniform random points outside the keep-out circles ``(cy, cx, radius)``."""
    points = np.stack([rng.uniform(0, height, count), rng.uniform(0, width, count)], axis=1)
    keep = np.ones(count, dtype=bool)
    for cy, cx, radius in keep_out:
        keep &= np.hypot(points[:, 0] - cy, points[:, 1] - cx) > radius
    return points[keep]
