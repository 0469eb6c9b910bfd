"""Tissue detection on low-resolution slide images: Otsu's threshold on the HSV saturation.

H&E tissue is coloured (pink/purple) while glass background is white or grey, so the saturation
channel separates the two; Otsu's method picks the threshold from the histogram (the CLAM
convention, done here with NumPy/SciPy instead of OpenCV/scikit-image). A 7x7 median filter removes
salt noise, and the threshold never drops below ``min_threshold`` so an all-background image does
not turn into "tissue" (Otsu always finds *some* split).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

DEFAULT_MIN_THRESHOLD = 8.0
DEFAULT_MEDIAN_SIZE = 7


def hsv_saturation(rgb: np.ndarray) -> np.ndarray:
    """HSV saturation of an HxWx3 uint8 RGB image as uint8 in [0, 255] (0 where the pixel is black)."""
    if rgb.ndim != 3 or rgb.shape[2] < 3:
        raise ValueError(f"expected an HxWx3 RGB image, got shape {rgb.shape}")
    red, green, blue = rgb[:, :, 0], rgb[:, :, 1], rgb[:, :, 2]
    high = np.maximum(np.maximum(red, green), blue)
    low = np.minimum(np.minimum(red, green), blue)
    spread = (high - low).astype(np.float32)
    sat = spread * np.float32(255.0) / np.maximum(high, 1).astype(np.float32)  # 0 where black
    return np.round(sat).astype(np.uint8)


def otsu_threshold(values: np.ndarray) -> float:
    """Otsu's threshold of uint8 ``values``: the level maximising the between-class variance.

    Pixels ``> threshold`` form the upper class. A constant input returns its value.
    """
    hist = np.bincount(np.asarray(values, dtype=np.uint8).ravel(), minlength=256).astype(np.float64)
    total = hist.sum()
    if total == 0:
        return 0.0
    levels = np.arange(256, dtype=np.float64)
    weight_low = np.cumsum(hist)
    weight_high = total - weight_low
    cum_mean = np.cumsum(hist * levels)
    mean_all = cum_mean[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_low = cum_mean / weight_low
        mean_high = (mean_all - cum_mean) / weight_high
        between = weight_low * weight_high * (mean_low - mean_high) ** 2
    between = np.nan_to_num(between, nan=-1.0, posinf=-1.0)
    if between.max() <= 0:
        return float(levels[hist > 0][0])
    return float(np.argmax(between))


def tissue_mask(
    rgb: np.ndarray,
    min_threshold: float = DEFAULT_MIN_THRESHOLD,
    median_size: int = DEFAULT_MEDIAN_SIZE,
) -> tuple[np.ndarray, float]:
    """Boolean tissue mask of a low-resolution RGB image and the saturation threshold used.

    The threshold is Otsu's on the saturation histogram (at least ``min_threshold``). The
    ``median_size`` median filter is applied to the thresholded mask, as a majority vote in each
    window (a box filter): a median filter commutes with thresholding, so this equals filtering
    the saturation first and thresholding after, at a fraction of the cost. Pixels outside the
    slide (pure black, e.g. the zero padding of OpenSlide) are never tissue.
    """
    sat = hsv_saturation(rgb)
    threshold = max(otsu_threshold(sat), float(min_threshold))
    mask = sat > threshold
    if median_size > 1 and min(mask.shape) >= median_size:
        votes = ndimage.uniform_filter(mask.astype(np.float32), size=median_size, mode="reflect")
        mask = votes > 0.5
    return mask, threshold  # black (outside the slide) has saturation 0, so it is never tissue


def tissue_fraction(rgb: np.ndarray, threshold: float) -> float:
    """Fraction of pixels of ``rgb`` whose saturation exceeds ``threshold`` (no filtering)."""
    if rgb.size == 0:
        return 0.0
    return float((hsv_saturation(rgb) > threshold).mean())


def tile_fractions(mask: np.ndarray, height: int, width: int, tile_size: int) -> np.ndarray:
    """Fraction of ``mask`` pixels set inside each ``tile_size`` tile of a ``height`` x ``width`` image.

    ``mask`` covers the whole image at a lower resolution (its own downsample per axis); tile
    (r, c) covers full-resolution rows ``[r*tile_size, (r+1)*tile_size)`` and the matching mask
    pixels (every mask pixel that the tile touches). Returns float64 ``(rows, cols)``, with
    ``rows = ceil(height / tile_size)`` and ``cols = ceil(width / tile_size)``.
    """
    rows, cols = -(-height // tile_size), -(-width // tile_size)
    mh, mw = mask.shape
    integral = np.zeros((mh + 1, mw + 1), dtype=np.int64)
    integral[1:, 1:] = np.cumsum(np.cumsum(mask.astype(np.int64), axis=0), axis=1)

    def edges(count: int, full: int, small: int) -> tuple[np.ndarray, np.ndarray]:
        starts = np.arange(count) * tile_size
        ends = np.minimum(starts + tile_size, full)
        lo = np.clip(np.floor(starts * small / full).astype(np.int64), 0, small - 1)
        hi = np.clip(np.ceil(ends * small / full).astype(np.int64), lo + 1, small)
        return lo, hi

    y0, y1 = edges(rows, height, mh)
    x0, x1 = edges(cols, width, mw)
    total = (
        integral[y1][:, x1] - integral[y0][:, x1] - integral[y1][:, x0] + integral[y0][:, x0]
    ).astype(np.float64)
    area = np.outer(y1 - y0, x1 - x0).astype(np.float64)
    return total / area
