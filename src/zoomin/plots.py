"""Figures: training curves per run, and attention maps with the sampled sub-tiles (paper Fig. 3/6).

Editing this file re-runs only the plotting rules (they list it as an input), never training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from zoomin.atomic import atomic_path  # noqa: E402

DISPLAY_SIDE = 800


def plot_curves(history_csv: str | Path, out_png: str | Path, title: str = "") -> None:
    """Loss and accuracy per epoch of one run."""
    history = pd.read_csv(history_csv)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.2))
    ax_loss.plot(history.epoch, history.train_loss, marker="o", label="train loss")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_loss.legend()
    ax_acc.plot(history.epoch, history.train_accuracy, marker="o", label="train")
    if history.val_accuracy.notna().any():
        ax_acc.plot(history.epoch, history.val_accuracy, marker="s", label="validation")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy")
    ax_acc.set_ylim(-0.02, 1.02)
    ax_acc.legend()
    fig.suptitle(title)
    fig.tight_layout()
    _save(fig, out_png)


def plot_attention(image, details: dict[str, Any], out_png: str | Path, title: str = "") -> None:
    """Image with sampled sub-tiles outlined, stage-1 attention, stage-2 attention, sub-tile gallery.

    ``image`` is an ImageAccess; only a display-sized view of it is read. ``details`` is one entry
    of a model output's ``details`` (Zoom-In or ATS).
    """
    height, width = image.size
    scale = min(1.0, DISPLAY_SIDE / max(height, width))
    picture = image.view(scale).permute(1, 2, 0).numpy()
    extent = (0, width, height, 0)
    centres = np.asarray(details.get("centres", np.zeros((0, 2))), dtype=float).reshape(-1, 2)
    size = int(details.get("subtile_size", details.get("patch_size", 0)))

    fig, axes = plt.subplots(1, 4, figsize=(16, 4.4))
    axes[0].imshow(picture, extent=extent)
    for cy, cx in centres:
        axes[0].add_patch(Rectangle((cx - size / 2, cy - size / 2), size, size, fill=False, ec="yellow", lw=1.2))
    axes[0].set_title(f"image, {len(centres)} sampled sub-tiles")

    if "tile_attention" in details:
        first = np.asarray(details["tile_attention"], dtype=float)
        second = _stage2_canvas(details, first.shape)
        titles = ("stage-1 attention a (tiles)", "stage-2 attention b (sampled tiles)")
    else:
        first = np.asarray(details["attention"], dtype=float)
        second = None
        titles = ("attention (one stage)", "")
    axes[1].imshow(picture, extent=extent)
    axes[1].imshow(first, extent=_grid_extent(first.shape, details, height, width), cmap="magma", alpha=0.6)
    axes[1].set_title(titles[0])
    if second is not None:
        axes[2].imshow(picture, extent=extent, alpha=0.5)
        axes[2].imshow(second, extent=_grid_extent(first.shape, details, height, width), cmap="viridis", alpha=0.7)
        axes[2].set_xlim(0, width)
        axes[2].set_ylim(height, 0)
        axes[2].set_title(titles[1])
    else:
        axes[2].axis("off")
    axes[3].imshow(_gallery(image, centres, size))
    axes[3].set_title("sampled sub-tiles (full resolution)")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title)
    fig.tight_layout()
    _save(fig, out_png)


def _grid_extent(shape: tuple[int, ...], details: dict[str, Any], height: int, width: int) -> tuple[float, ...]:
    """Full-resolution extent of a map over the tile grid (Zoom-In) or the whole image (ATS)."""
    if "tile_size" in details:
        tile = float(details["tile_size"])
        return (0.0, shape[1] * tile, shape[0] * tile, 0.0)
    return (0.0, float(width), float(height), 0.0)


def _stage2_canvas(details: dict[str, Any], grid: tuple[int, int]) -> np.ndarray:
    """Each sampled tile's b_t pasted at its place in the tile grid (NaN elsewhere)."""
    maps = {int(t): np.asarray(m, dtype=float) for t, m in details.get("subtile_attention", {}).items()}
    if not maps:
        return np.full(grid, np.nan)
    h2, w2 = next(iter(maps.values())).shape
    canvas = np.full((grid[0] * h2, grid[1] * w2), np.nan)
    for tile, attention in maps.items():
        row, col = divmod(tile, grid[1])
        canvas[row * h2 : (row + 1) * h2, col * w2 : (col + 1) * w2] = attention / attention.max()
    return canvas


def _gallery(image, centres: np.ndarray, size: int, columns: int = 5) -> np.ndarray:
    if len(centres) == 0 or size == 0:
        return np.ones((8, 8, 3))
    import torch  # here, not at the top: the training-curve jobs then start without loading torch

    patches = image.patches(torch.as_tensor(centres), size).permute(0, 2, 3, 1).numpy()
    rows = int(np.ceil(len(patches) / columns))
    pad = 2
    canvas = np.ones((rows * (size + pad), columns * (size + pad), 3))
    for i, patch in enumerate(patches):
        r, c = divmod(i, columns)
        canvas[r * (size + pad) : r * (size + pad) + size, c * (size + pad) : c * (size + pad) + size] = patch
    return canvas


def _save(fig, out_png: str | Path) -> None:
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
