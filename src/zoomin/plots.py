"""Figures: training curves of a method's runs, and attention maps with the sampled sub-tiles (paper Fig. 3/6).

Editing this file re-runs only the plotting rules (they list it as an input), never training.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from zoomin.atomic import atomic_path  # noqa: E402

if TYPE_CHECKING:
    from zoomin.models.output import Attention, AttentionMap

DISPLAY_SIDE = 800
MIN_OUTLINE = 3.0  # display pixels: smaller sub-tiles are marked by their centre, not outlined


LOSS_PARTS = {  # history column -> legend label (the parts a run's loss has; zero parts are not drawn)
    "train_loss": "total",
    "mean_cross_entropy": "cross-entropy",
    "mean_contrastive": "contrastive",
    "mean_mask": "mask MSE",
    "mean_auxiliary": "model's own terms",
}


def plot_curves(histories: dict[str, str | Path], out_png: str | Path, title: str = "") -> None:
    """Loss (and its parts) and accuracy per epoch, one row of two panels per run (``histories``:
    run name -> its history CSV), so the folds or seeds of a method can be compared at a glance."""
    fig, axes = plt.subplots(len(histories), 2, figsize=(9, 3.2 * len(histories)), squeeze=False)
    for (run, history_csv), (ax_loss, ax_acc) in zip(histories.items(), axes):
        _curves_of_run(pd.read_csv(history_csv), ax_loss, ax_acc)
        ax_loss.set_title(f"run {run}: loss", fontsize="medium")
        ax_acc.set_title(f"run {run}: accuracy", fontsize="medium")
    fig.suptitle(title)
    fig.tight_layout()
    _save(fig, out_png)


def _curves_of_run(history: pd.DataFrame, ax_loss: Axes, ax_acc: Axes) -> None:
    """One run's two panels: the loss and its non-zero parts; training and validation accuracy."""
    losses = history.melt(
        id_vars="epoch",
        value_vars=[c for c in LOSS_PARTS if c in history and (c == "train_loss" or history[c].abs().max() > 0)],
        var_name="part",
        value_name="loss",
    ).replace({"part": LOSS_PARTS})
    accuracy = history.melt(
        id_vars="epoch",
        value_vars=[c for c in ("train_accuracy", "val_accuracy") if history[c].notna().any()],
        var_name="set",
        value_name="accuracy",
    ).replace({"set": {"train_accuracy": "train", "val_accuracy": "validation"}})
    sns.lineplot(losses, x="epoch", y="loss", hue="part", marker="o", ax=ax_loss)
    sns.lineplot(accuracy, x="epoch", y="accuracy", hue="set", style="set", markers=True, dashes=False, ax=ax_acc)
    ax_acc.set_ylim(-0.02, 1.02)
    for ax in (ax_loss, ax_acc):
        ax.legend(fontsize="small")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def plot_attention(image, attention: Attention | None, out_png: str | Path, title: str = "") -> None:
    """Image with sampled sub-tiles outlined, stage-1 attention, stage-2 attention, sub-tile gallery.

    ``image`` is an ImageAccess; only a display-sized view of it is read. ``attention`` is one
    image's detached :class:`~zoomin.models.output.Attention` (``None`` for models without one).
    """
    height, width = image.size
    scale = min(1.0, DISPLAY_SIDE / max(height, width))
    picture = image.view(scale).permute(1, 2, 0).numpy()
    extent = (0, width, height, 0)
    sampled = attention.sampled if attention is not None else None
    centres = np.zeros((0, 2)) if sampled is None else np.asarray(sampled.centres, dtype=float).reshape(-1, 2)
    size = 0 if sampled is None else int(sampled.size)

    fig, axes = plt.subplots(1, 4, figsize=(16, 4.4))
    axes[0].imshow(picture, extent=extent)
    if size * scale >= MIN_OUTLINE:
        for cy, cx in centres:
            axes[0].add_patch(Rectangle((cx - size / 2, cy - size / 2), size, size, fill=False, ec="yellow", lw=1.2))
    elif len(centres):  # sub-tiles a pixel or two wide on screen (whole slides): mark their centres
        axes[0].scatter(centres[:, 1], centres[:, 0], s=14, marker="x", c="yellow", linewidths=1.0)
    axes[0].set_title(f"image, {len(centres)} sampled sub-tiles")

    if attention is not None:
        two_stage = bool(attention.stage2)
        axes[1].imshow(picture, extent=extent)
        _show_map(axes[1], attention.stage1, "magma", alpha=0.6)
        axes[1].set_title("stage-1 attention a (tiles)" if two_stage else "attention (one stage)")
    else:
        axes[1].axis("off")
    if attention is not None and attention.stage2:
        axes[2].imshow(picture, extent=extent, alpha=0.5)
        for amap in attention.stage2.values():
            _show_map(axes[2], amap, "viridis", alpha=0.7, normalise=True)
        axes[2].set_title("stage-2 attention b (sampled tiles)")
    else:
        axes[2].axis("off")
    for ax in axes[:3]:
        ax.set_xlim(0, width)
        ax.set_ylim(height, 0)
    axes[3].imshow(_gallery(image, centres, size))
    axes[3].set_title("sampled sub-tiles (full resolution)")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title)
    fig.tight_layout()
    _save(fig, out_png)


def _show_map(ax, amap: AttentionMap, cmap: str, alpha: float, normalise: bool = False) -> None:
    """Draw an attention map at its place over the image (full-resolution coordinates)."""
    values = np.asarray(amap.probs, dtype=float)
    if normalise and values.max() > 0:
        values = values / values.max()
    top, left, height, width = amap.bounds()
    ax.imshow(values, extent=(left, left + width, top + height, top), cmap=cmap, alpha=alpha)


def _gallery(image, centres: np.ndarray, size: int) -> np.ndarray:
    if len(centres) == 0 or size == 0:
        return np.ones((8, 8, 3))
    columns = max(5, int(np.ceil(np.sqrt(len(centres)))))  # about square for the many sub-tiles of slides
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
