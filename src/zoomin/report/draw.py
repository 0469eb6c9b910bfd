"""Drawing every figure from prepared data: each function takes numbers (frames, arrays, attention
maps) and writes one PNG.

* :func:`plot_curves` -- loss parts and accuracy per epoch, a row per run;
* :func:`plot_attention` -- an image with its attention and sampled sub-tiles (paper Fig. 3/6);
* :func:`plot_memory`, :func:`plot_errorbars`, :func:`plot_spearman`, :func:`plot_views`,
  :func:`plot_pareto` -- the paper's Figures 4, 5, 7, 8 and the Pareto sweep;
* :func:`plot_budget` -- accuracy against cumulative training compute, every run of a block.

What goes into them is computed by :mod:`zoomin.report.figure_data`, :mod:`zoomin.report.agreement`
and :mod:`zoomin.report.figures`. Editing this file re-runs only the figure rules (they list it as
an input), never training.
"""

from __future__ import annotations

import math
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
from zoomin.report.figure_data import front_steps  # noqa: E402

if TYPE_CHECKING:
    from zoomin.models.output import Attention, AttentionMap

DISPLAY_SIDE = 800
MIN_OUTLINE = 3.0  # display pixels: smaller sub-tiles are marked by their centre, not outlined
PAPER_COLOUR = "#c0392b"
PLAIN = matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}")  # log axes labelled 2.5, not 2.5x10^0


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



def plot_memory(
    history: pd.DataFrame, scaling: pd.DataFrame, out_png: str | Path, tiles_in_image: float | None = None,
    title: str = "",
) -> None:
    """Figure 4: tiles opened and input memory per image during training (per epoch), and peak
    inference memory against image side."""
    fig, (ax_tiles, ax_input, ax_side) = plt.subplots(1, 3, figsize=(15, 4.2))
    tiles = history[history.mean_unique_tiles.notna()] if "mean_unique_tiles" in history else history.iloc[:0]
    if len(tiles):
        sns.lineplot(tiles, x="epoch", y="mean_unique_tiles", hue="label", errorbar="sd", marker="o", ax=ax_tiles)
        if tiles_in_image:
            ax_tiles.axhline(tiles_in_image, ls="--", c="grey", lw=1, label=f"tiles in an image ({tiles_in_image:g})")
        ax_tiles.set_ylim(bottom=0)
        ax_tiles.legend(fontsize="small")
    ax_tiles.set(title="distinct tiles opened per image (training)", ylabel="tiles")
    if "mean_input_mb" in history and len(history):
        sns.lineplot(history, x="epoch", y="mean_input_mb", hue="label", errorbar="sd", marker="o", ax=ax_input)
        ax_input.set_ylim(bottom=0)
        ax_input.legend(fontsize="small")
    ax_input.set(title="image values read per image (training)", ylabel="MB (float32)")
    for ax in (ax_tiles, ax_input):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if len(scaling):
        sns.lineplot(scaling, x="image_side", y="peak_memory_mb", hue="method", marker="o", ax=ax_side)
        ax_side.set_xscale("log")
        ax_side.set_yscale("log")
        sides = sorted(scaling.image_side.unique())
        ax_side.set_xticks(sides, [str(s) for s in sides])
        ax_side.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax_side.yaxis.set_major_formatter(PLAIN)
        ax_side.yaxis.set_minor_formatter(PLAIN)
        ax_side.legend(fontsize="small")
    ax_side.set(title="peak inference memory, batch 1", xlabel="image side (px)", ylabel="MB")
    ax_side.grid(True, which="both", alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    _save(fig, out_png)


def plot_errorbars(runs: pd.DataFrame, paper: pd.DataFrame | None, out_png: str | Path, title: str = "") -> None:
    """Figure 5: test accuracy per method, mean ± std over runs, each run as a dot; the paper's
    mean ± std beside it where the paper has the method."""
    order = list(dict.fromkeys(runs.label))
    fig, ax = plt.subplots(figsize=(1.6 * max(len(order), 2) + 2, 4))
    sns.stripplot(runs, x="label", y="accuracy", order=order, color="grey", alpha=0.6, jitter=0.08, ax=ax)
    sns.pointplot(
        runs, x="label", y="accuracy", order=order, errorbar="sd", capsize=0.06, linestyle="none",
        marker="o", color="black", ax=ax, label="this workflow (mean ± std)",
    )
    if paper is not None and len(paper):
        positions = {label: i for i, label in enumerate(order)}
        shown = paper[paper.label.isin(positions)]
        ax.errorbar(
            [positions[label] + 0.2 for label in shown.label], shown.paper_accuracy,
            yerr=shown.paper_accuracy_std.fillna(0.0), fmt="D", color=PAPER_COLOUR, capsize=4,
            label="paper (mean ± std)",
        )
    ax.set(xlabel="", ylabel="test accuracy (%)", ylim=(-2, 102), title=title)
    ax.axhline(50, ls=":", c="grey", lw=1)
    ax.legend(fontsize="small", loc="lower right")
    fig.tight_layout()
    _save(fig, out_png)


def plot_spearman(tiles: pd.DataFrame, summary: pd.DataFrame, out_png: str | Path, title: str = "") -> None:
    """Figure 7: per tile, stage-1 attention against the fraction of the tile that is object, with
    a regression line and Spearman's rho (all tiles of annotated images; tiles with object)."""
    fig, ax = plt.subplots(figsize=(6, 4.6))
    sns.regplot(tiles, x="coverage", y="attention", ax=ax, scatter_kws={"s": 12, "alpha": 0.5}, line_kws={"lw": 1.5})
    rho = dict(zip(summary.cells, summary.spearman_rho))
    count = dict(zip(summary.cells, summary.tiles))
    ax.set(
        xlabel="fraction of the tile covered by the annotation",
        ylabel="stage-1 attention of the tile",
        title=f"{title}\nSpearman's ρ = {rho.get('all', np.nan):.3f} ({count.get('all', 0)} tiles); "
        f"tiles with object: ρ = {rho.get('object', np.nan):.3f} ({count.get('object', 0)})",
    )
    ax.title.set_fontsize("medium")
    fig.tight_layout()
    _save(fig, out_png)


def plot_pareto(points: pd.DataFrame, out_png: str | Path, title: str = "") -> None:
    """Accuracy against peak inference memory per configuration (mean ± std over runs); each model
    type's front (its best accuracy within each memory budget) as a step line."""
    fig, ax = plt.subplots(figsize=(7.5, 5))
    palette = dict(zip(points.model.unique(), sns.color_palette(n_colors=points.model.nunique())))
    for model, part in points.groupby("model", sort=False):
        colour = palette[model]
        ax.errorbar(part.memory_mb, part.accuracy_mean, yerr=part.accuracy_std, fmt="o", color=colour,
                    capsize=3, alpha=0.85, label=model)
        steps = front_steps(points, model)
        if len(steps):
            x = [*steps.memory_mb, points.memory_mb.max() * 1.15]
            y = [*steps.accuracy_mean, steps.accuracy_mean.iloc[-1]]
            ax.step(x, y, where="post", color=colour, lw=1.2, alpha=0.7)
    placed: list[tuple[float, float]] = []
    for row in points.sort_values(["memory_mb", "accuracy_mean"]).itertuples():
        # Configurations with (nearly) the same memory and accuracy get their labels stacked.
        near = sum(abs(math.log10(row.memory_mb / m)) < 0.03 and abs(row.accuracy_mean - a) < 3 for m, a in placed)
        ax.annotate(row.label, (row.memory_mb, row.accuracy_mean), fontsize=7, xytext=(4, 4 - 9 * near),
                    textcoords="offset points")
        placed.append((row.memory_mb, row.accuracy_mean))
    ax.set_ylim(top=min(ax.get_ylim()[1], 102))  # mean + std may pass 100 %; accuracy cannot
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(PLAIN)
    ax.xaxis.set_minor_formatter(PLAIN)
    ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.set(xlabel="peak inference memory per image (MB, batch 1)", ylabel="test accuracy (%)", title=title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(title="model (steps: best within budget)", fontsize="small")
    fig.tight_layout()
    _save(fig, out_png)


def plot_views(
    full: np.ndarray, view: np.ndarray, scale: float, box: tuple[int, int, int, int] | None,
    attention: tuple[np.ndarray, tuple[float, float, float, float]] | None, out_png: str | Path, title: str = "",
) -> None:
    """Figure 8: the image at full resolution with the object boxed, the stage-1 view the attention
    network sees (scale ``scale``), and the object's neighbourhood in both.

    ``full`` and ``view`` are HxWx3 arrays in [0, 1] covering the whole image; ``box`` is
    ``(top, left, height, width)`` in ``full``'s pixels; ``attention`` the stage-1 map and its
    ``(top, left, height, width)`` in the same pixels (drawn over the view)."""
    height, width = full.shape[:2]
    panels = 4 if box is not None else 2
    fig, axes = plt.subplots(1, panels + (attention is not None), figsize=(4.2 * (panels + 1), 4.4))
    axes = np.atleast_1d(axes)
    axes[0].imshow(full, extent=(0, width, height, 0))
    axes[0].set_title(f"full resolution ({width}x{height})")
    axes[1].imshow(view, extent=(0, width, height, 0), interpolation="nearest")
    axes[1].set_title(f"stage-1 view, scale {scale:g} ({view.shape[1]}x{view.shape[0]})")
    k = 2
    if box is not None:
        top, left, box_h, box_w = box
        for ax in axes[:2]:
            ax.add_patch(Rectangle((left, top), box_w, box_h, fill=False, ec="yellow", lw=1.5))
        margin = max(box_h, box_w)
        y0, y1 = max(0, top - margin), min(height, top + box_h + margin)
        x0, x1 = max(0, left - margin), min(width, left + box_w + margin)
        axes[2].imshow(full[y0:y1, x0:x1], extent=(x0, x1, y1, y0))
        axes[2].set_title("around the object, full resolution")
        vy0, vy1 = int(y0 * view.shape[0] / height), max(int(np.ceil(y1 * view.shape[0] / height)), 1)
        vx0, vx1 = int(x0 * view.shape[1] / width), max(int(np.ceil(x1 * view.shape[1] / width)), 1)
        axes[3].imshow(view[vy0:vy1, vx0:vx1], extent=(x0, x1, y1, y0), interpolation="nearest")
        axes[3].set_title("the same region in the stage-1 view")
        k = 4
    if attention is not None:
        probs, (a_top, a_left, a_height, a_width) = attention
        axes[k].imshow(view, extent=(0, width, height, 0), interpolation="nearest")
        rows, cols = probs.shape
        axes[k].imshow(probs, extent=(a_left, a_left + a_width, a_top + a_height, a_top), cmap="magma", alpha=0.6)
        axes[k].set_xlim(0, width)
        axes[k].set_ylim(height, 0)
        if box is not None:
            axes[k].add_patch(Rectangle((box[1], box[0]), box[3], box[2], fill=False, ec="yellow", lw=1.5))
        axes[k].set_title(f"stage-1 attention a ({rows}x{cols} tiles)")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title)
    fig.tight_layout()
    _save(fig, out_png)


def plot_budget(curves: pd.DataFrame, labels: list[str], out_png: str | Path, title: str = "") -> None:
    """Validation (left) and training (right) accuracy per epoch against the cumulative training
    compute (:func:`zoomin.report.figure_data.budget_curves`), a line per run, a colour per method
    of ``labels``; each run's last epoch marked, so a curve still rising there shows a budget that
    stopped it. A method with nothing to draw in a panel is named at its foot."""
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.6), sharex=True, sharey=True)
    palette = dict(zip(labels, sns.color_palette(n_colors=max(len(labels), 1))))
    for ax, name in zip(axes, ("validation", "training")):
        shown = curves[curves.set == name]
        for (label, _), run in shown.groupby(["label", "run"], sort=False):
            ax.plot(run.train_gmacs, run.accuracy, "-", marker=".", ms=4, color=palette[label], alpha=0.8, lw=1.2)
            ax.plot(run.train_gmacs.iloc[-1], run.accuracy.iloc[-1], "o", color=palette[label])
        for label, colour in palette.items():
            if label in set(shown.label):
                ax.plot([], [], "-o", color=colour, label=label)
        missing = [label for label in labels if label not in set(shown.label)]
        if missing:
            ax.text(0.01, 0.01, f"no {name} accuracy or compute recorded: " + ", ".join(missing),
                    transform=ax.transAxes, fontsize="x-small", va="bottom")
        ax.set(xlabel="training compute (GMACs, cumulative, estimated)", ylabel=f"{name} accuracy (%)",
               title=f"{name} accuracy", ylim=(-2, 102))
        if len(shown):
            ax.set_xscale("log")
            ax.legend(fontsize="small", loc="lower right")
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    _save(fig, out_png)


def _save(fig, out_png: str | Path) -> None:
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
