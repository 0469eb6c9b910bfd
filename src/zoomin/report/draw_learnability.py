"""Drawing the learnability map: one heatmap per method, object-to-image ratio x training-set size.

Each cell shows the mean test accuracy of the method's runs with its 95 % interval and how many
runs learned alone; a cell whose interval lies above chance is outlined, so the boundary between
where a method learns and where it does not can be read at a glance. The data come from
:func:`zoomin.report.learnability.summarise`.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from zoomin.atomic import atomic_path  # noqa: E402

COLOURS = "viridis"


def plot_learnability(summary: pd.DataFrame, out_png: str | Path, title: str = "") -> None:
    """A heatmap per method (rows: ratios, largest at the top; columns: training-set sizes),
    coloured by accuracy from chance to 100 %; learned cells (interval above chance) outlined."""
    methods = list(dict.fromkeys(summary.method))
    ratios = sorted(summary.ratio.unique(), reverse=True)
    pixels = summary.groupby("ratio").object_px.first()
    sizes = sorted(summary.train_images.unique())
    chance = float(summary.chance.min())
    width = max(3.2, 1.25 * len(sizes) + 1.4)
    fig, axes = plt.subplots(
        1, len(methods), figsize=(width * len(methods) + 1.2, 0.85 * len(ratios) + 2.4), squeeze=False,
        layout="constrained",
    )
    image = None
    for ax, method in zip(axes[0], methods):
        part = summary[summary.method == method].set_index(["ratio", "train_images"])
        grid = np.full((len(ratios), len(sizes)), np.nan)
        for i, ratio in enumerate(ratios):
            for j, size in enumerate(sizes):
                if (ratio, size) not in part.index:
                    continue
                cell = part.loc[(ratio, size)]
                grid[i, j] = cell.accuracy
                text = f"{cell.accuracy:.0f}%\n[{cell.low:.0f}, {cell.high:.0f}]\n{cell.runs_learned}/{cell.runs} runs"
                ax.text(j, i, text, ha="center", va="center", fontsize=7,
                        color="black" if cell.accuracy > (chance + 100) / 2 else "white")
                if cell.learned:
                    ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="#e74c3c", lw=2.5))
        image = ax.imshow(grid, cmap=COLOURS, vmin=chance, vmax=100.0, aspect="auto")
        ax.set_xticks(range(len(sizes)), [str(s) for s in sizes])
        ax.set_yticks(range(len(ratios)), [f"{r:g}\n({pixels[r]:,.0f} px)" for r in ratios])
        ax.set_xlabel("training images")
        ax.set_title(str(part.label.iloc[0]), fontsize="medium")
    axes[0][0].set_ylabel("object area / image area")
    if image is not None:
        bar = fig.colorbar(image, ax=axes[0].tolist(), fraction=0.03, pad=0.01)
        bar.set_label("test accuracy (%), mean over runs")
    note = (
        "each cell: mean accuracy over runs, [95 % interval], runs whose own interval lies above chance; "
        "outlined: the interval lies above chance (learned)"
    )
    fig.suptitle(title, fontsize="medium")
    fig.supxlabel(note, fontsize="small")
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=110, format="png", bbox_inches="tight")
    plt.close(fig)
