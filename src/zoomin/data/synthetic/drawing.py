"""Drawing primitives shared by the stand-ins: smooth fields, noise, anti-aliased ellipses, blobs,
and fine periodic patterns whose mean is matched so they vanish when the image is downscaled.

Images are drawn as float32 HxWx3 arrays in 0..255 and converted once with :func:`to_uint8`.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def to_uint8(canvas: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8)


def smooth_field(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    """Low-frequency noise in about [-1, 1]: a coarse random grid (one value per ``cell`` px) upsampled."""
    grid = rng.standard_normal((max(2, height // cell + 2), max(2, width // cell + 2))).astype(np.float32)
    image = Image.fromarray(grid, mode="F").resize((width, height), Image.Resampling.BICUBIC)
    return np.clip(np.asarray(image, dtype=np.float32) / 1.5, -1.5, 1.5)


def gray_noise(rng: np.random.Generator, height: int, width: int, sigma: float) -> np.ndarray:
    """Per-pixel Gaussian noise shared by the three channels, shape HxWx1."""
    return rng.standard_normal((height, width, 1), dtype=np.float32) * np.float32(sigma)


def window(
    shape: tuple[int, ...], cy: float, cx: float, half: int
) -> tuple[slice, slice, np.ndarray, np.ndarray] | None:
    """Slices of the square window of half-size ``half`` around (cy, cx) clipped to the image, and the
    pixel-centre coordinates of that window relative to (cy, cx); None if it lies outside."""
    top, left = int(np.floor(cy)) - half, int(np.floor(cx)) - half
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + 2 * half + 1, shape[0]), min(left + 2 * half + 1, shape[1])
    if y1 <= y0 or x1 <= x0:
        return None
    ys = np.arange(y0, y1, dtype=np.float32)[:, None] + 0.5 - np.float32(cy)
    xs = np.arange(x0, x1, dtype=np.float32)[None, :] + 0.5 - np.float32(cx)
    return slice(y0, y1), slice(x0, x1), ys, xs


def ellipse_alpha(ys: np.ndarray, xs: np.ndarray, ry: float, rx: float, angle: float) -> np.ndarray:
    """Coverage (0..1, about one pixel of anti-aliasing) of a rotated ellipse centred at (0, 0)."""
    cos, sin = np.cos(angle), np.sin(angle)
    u = cos * ys + sin * xs
    v = -sin * ys + cos * xs
    distance = np.sqrt((u / ry) ** 2 + (v / rx) ** 2)
    return np.clip((1.0 - distance) * min(ry, rx) + 0.5, 0.0, 1.0).astype(np.float32)


def disc_mask(height: int, width: int, centres: np.ndarray, radius: float) -> np.ndarray:
    """uint8 HxW mask (0/255) with a disc of ``radius`` px around each full-resolution (y, x) centre,
    the way point annotations (e.g. CRCHistoPhenotypes' nucleus centres) are turned into masks."""
    from PIL import ImageDraw

    mask = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(mask)
    for y, x in np.asarray(centres, dtype=float).reshape(-1, 2):
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=255)
    return np.asarray(mask).copy()


def blend(canvas: np.ndarray, rows: slice, cols: slice, alpha: np.ndarray, fill: np.ndarray) -> None:
    """canvas[rows, cols] <- (1 - alpha) * canvas + alpha * fill, in place."""
    region = canvas[rows, cols]
    a = alpha[:, :, None]
    region *= 1.0 - a
    region += a * fill


def blob_mask(
    rng: np.random.Generator,
    height: int,
    width: int,
    area: float,
    cy: float,
    cx: float,
    wobble: float = 0.15,
) -> np.ndarray:
    """Boolean HxW mask of a smooth irregular blob of about ``area`` px centred on (cy, cx).

    The outline is r(t) = R (1 + sum_k a_k cos(k t + p_k)), k = 2..4; R is set from the analytic area.
    """
    amplitudes = rng.uniform(0.0, wobble, 3)
    phases = rng.uniform(0.0, 2 * np.pi, 3)
    radius = np.sqrt(area / (np.pi * (1.0 + np.sum(amplitudes**2) / 2.0)))
    reach = radius * (1.0 + np.sum(amplitudes)) + 2.0
    y0, y1 = max(0, int(cy - reach)), min(height, int(np.ceil(cy + reach)))
    x0, x1 = max(0, int(cx - reach)), min(width, int(np.ceil(cx + reach)))
    mask = np.zeros((height, width), dtype=bool)
    if y1 <= y0 or x1 <= x0:
        return mask
    ys = np.arange(y0, y1, dtype=np.float64)[:, None] + 0.5 - cy
    xs = np.arange(x0, x1, dtype=np.float64)[None, :] + 0.5 - cx
    theta = np.arctan2(ys, xs)
    outline = 1.0 + sum(
        a * np.cos(k * theta + p) for k, a, p in zip((2, 3, 4), amplitudes, phases)
    )
    mask[y0:y1, x0:x1] = np.hypot(ys, xs) <= radius * outline
    return mask


def blob_extent(area: float, wobble: float = 0.15) -> float:
    """An upper bound of a :func:`blob_mask` blob's radius for ``area``."""
    return float(np.sqrt(area / np.pi) * (1.0 + 3 * wobble))


def place_circles(
    rng: np.random.Generator,
    height: int,
    width: int,
    radii: list[float],
    margin: float = 0.0,
    tries: int = 200,
) -> list[tuple[float, float]]:
    """Centres for circles of ``radii`` inside the image, not overlapping where possible."""
    centres: list[tuple[float, float]] = []
    for radius in radii:
        lo_y, hi_y = radius + margin, height - radius - margin
        lo_x, hi_x = radius + margin, width - radius - margin
        lo_y, hi_y = (lo_y, hi_y) if hi_y > lo_y else (height / 2, height / 2 + 1e-6)
        lo_x, hi_x = (lo_x, hi_x) if hi_x > lo_x else (width / 2, width / 2 + 1e-6)
        best, best_gap = None, -np.inf
        for _ in range(tries):
            cy, cx = rng.uniform(lo_y, hi_y), rng.uniform(lo_x, hi_x)
            gap = min(
                (np.hypot(cy - y, cx - x) - radius - r for (y, x), r in zip(centres, radii)),
                default=np.inf,
            )
            if gap > margin:
                best = (cy, cx)
                break
            if gap > best_gap:
                best, best_gap = (cy, cx), gap
        centres.append(best)
    return centres
