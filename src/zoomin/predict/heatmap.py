"""The heatmap PNG of one prediction: where the model looked, over a thumbnail of the image.

Left panel: the stage-1 attention ``a`` (Zoom-In's tiles, ATS's view) over the thumbnail. Right
panel, for two-stage models: ``a_t * b_t`` -- the probability of drawing each sub-tile position --
over the tiles whose stage-2 view was opened, on one colour scale, with the sampled sub-tiles
outlined; for one-stage models the sampled patches outlined. Only a thumbnail-sized view of the
image is read (``image.view``), so a whole slide costs a low pyramid level.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import Normalize  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from zoomin.atomic import atomic_path  # noqa: E402
from zoomin.image_access import ImageAccess  # noqa: E402
from zoomin.models.output import Attention, AttentionMap  # noqa: E402
from zoomin.predict.annotations import sampled_subtiles  # noqa: E402


def thumbnail(image: ImageAccess, side: int) -> np.ndarray:
    """HxWx3 float thumbnail whose longer side is at most ``side`` pixels."""
    height, width = image.size
    scale = min(1.0, side / max(height, width))
    return image.view(scale).permute(1, 2, 0).numpy()


def plot_heatmap(image: ImageAccess, attention: Attention, out_png: str | Path, title: str, side: int) -> None:
    """Write the heatmap PNG (module docstring) atomically to ``out_png``."""
    picture = thumbnail(image, side)
    height, width = image.size
    extent = (0, width, height, 0)
    two_stage = bool(attention.stage2)
    fig, axes = plt.subplots(1, 2, figsize=(12, 6 * height / max(height, width) + 0.8), squeeze=False)
    left, right = axes[0]

    left.imshow(picture, extent=extent)
    shown = _draw_map(left, attention.stage1, "magma", alpha=0.55)
    fig.colorbar(shown, ax=left, fraction=0.046, pad=0.02, label="stage-1 attention a" if two_stage else "attention")
    left.set_title("stage-1 attention a (tiles)" if two_stage else "attention")

    right.imshow(picture.mean(axis=2), extent=extent, cmap="gray", vmin=0, vmax=1)
    if two_stage:
        peak = max(
            float(attention.stage1.probs.reshape(-1)[cell]) * float(amap.probs.max())
            for cell, amap in attention.stage2.items()
        )
        norm = Normalize(0.0, peak if peak > 0 else 1.0)
        shown = None
        for cell, amap in attention.stage2.items():
            joint = AttentionMap(amap.probs * attention.stage1.probs.reshape(-1)[cell], amap.origin, amap.cell)
            shown = _draw_map(right, joint, "viridis", alpha=0.8, norm=norm)
        fig.colorbar(shown, ax=right, fraction=0.046, pad=0.02, label="a * b (opened tiles)")
        right.set_title(f"a * b over the {len(attention.stage2)} opened tiles, sampled sub-tiles")
    else:
        right.set_title("sampled patches")
    for subtile in sampled_subtiles(attention):
        box = subtile.box
        right.add_patch(
            Rectangle((box.left, box.top), box.right - box.left, box.bottom - box.top, fill=False, ec="red", lw=0.8)
        )
    for ax in (left, right):
        ax.set_xlim(0, width)
        ax.set_ylim(height, 0)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def _draw_map(ax, amap: AttentionMap, cmap: str, alpha: float, norm: Normalize | None = None):
    top, left, height, width = amap.bounds()
    values = np.asarray(amap.probs, dtype=float)
    extent = (left, left + width, top + height, top)
    return ax.imshow(values, extent=extent, cmap=cmap, alpha=alpha, norm=norm, interpolation="nearest")
