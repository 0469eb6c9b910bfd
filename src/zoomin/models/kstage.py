"""The bookkeeping of K-stage attention sampling (docs/method.md §14), batched over a batch's draws.

A K-stage Zoom-In (:mod:`zoomin.models.zoomin_k`) draws with replacement at stages 1..K-1 and
without replacement at stage K. What one counted stage drew for a batch is a :class:`Level`: the
``M`` distinct (parent, cell) pairs, their counts and estimator weights
(:class:`zoomin.models.stages.CountDraws`, whose rows are the PARENTS: the images at stage 1, the
rows of the level above otherwise), and, per drawn region, its image, its full-resolution corner
and the stage-1 region it lies in. The regions of one level are the rows of the next stage.

* :func:`child_corners`, :func:`children_inside` -- the geometry of a region's cells: a region of
  side ``R`` holds ``(R / r)^2`` cells of side ``r``; cells that start outside the image are never
  drawn, so the leaf tiles a K-stage model can reach are exactly the tiles of the two-stage grid.
* :func:`tissue_at`, :func:`children_on_tissue` -- with ``tissue_only``, a cell at any stage holds
  tissue when one of its leaf tiles does (the slide's tissue mask at the leaf tile size, pooled
  with "any"), so a drawn region always has a child with tissue.
* :func:`compose` -- the estimate: the leaf stage's per-row estimates, then each counted stage from
  the bottom up (:func:`zoomin.models.stages.counted_estimate`: ``sum_cells (k/k_parent) p/sg(p)
  inner``), one segment sum per stage. A draw's weight is the product of its weights along its path.
* :func:`mean_per_image` -- the per-image mean of a per-row quantity (the entropy of each drawn
  region's map).

No Python loop here grows with the batch or the draws: every function works on whole levels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from zoomin.models import stages


@dataclass
class Level:
    """The regions one counted stage drew for a batch (module docstring); ``M`` rows."""

    draws: stages.CountDraws  # rows = parents; cell, count k, weight (k / k_parent) p/sg(p)
    probs: torch.Tensor  # (parents, cells) the attention the cells were drawn by (before any complement)
    images: np.ndarray  # (M,) image of each drawn region
    corners: np.ndarray  # (M, 2) full-resolution (top, left) of each drawn region
    roots: np.ndarray  # (M,) the row of the stage-1 level each region lies in
    side: int  # the regions' side, full-resolution px


def child_corners(corners: np.ndarray, cells: np.ndarray, per_side: int, side: int) -> np.ndarray:
    """``(n, 2)`` corners of cell ``cells[i]`` (row-major in a ``per_side`` x ``per_side`` grid of
    ``side`` px cells) of the region whose corner is ``corners[i]``."""
    offsets = np.stack(np.divmod(np.asarray(cells, dtype=np.int64), per_side), axis=1) * side
    return np.asarray(corners, dtype=np.int64).reshape(-1, 2) + offsets


def children_inside(
    sizes: Sequence[tuple[int, int]], owners: np.ndarray, corners: np.ndarray, per_side: int, side: int
) -> torch.Tensor:
    """``(n, per_side^2)`` bool: which cells of each region start inside its image
    (``sizes[owners[i]]``, ``(height, width)``)."""
    offsets = np.arange(per_side) * side
    bounds = np.asarray(sizes, dtype=np.int64).reshape(-1, 2)[np.asarray(owners, dtype=np.int64)]
    corners = np.asarray(corners, dtype=np.int64).reshape(-1, 2)
    rows = corners[:, :1] + offsets < bounds[:, :1]
    cols = corners[:, 1:] + offsets < bounds[:, 1:]
    return torch.from_numpy((rows[:, :, None] & cols[:, None, :]).reshape(len(corners), -1))


def tissue_at(leaf_mask: torch.Tensor, factor: int) -> torch.Tensor:
    """The tissue of cells ``factor`` leaf tiles a side: any of their leaf tiles (``leaf_mask``:
    bool ``(rows, cols)``) holds tissue."""
    if factor == 1:
        return leaf_mask.bool()
    rows, cols = -(-leaf_mask.shape[0] // factor), -(-leaf_mask.shape[1] // factor)
    padding = (0, cols * factor - leaf_mask.shape[1], 0, rows * factor - leaf_mask.shape[0])
    padded = F.pad(leaf_mask.float()[None, None], padding)
    return F.max_pool2d(padded, factor)[0, 0] > 0


def children_on_tissue(
    masks: Sequence[torch.Tensor | None], owners: np.ndarray, corners: np.ndarray, per_side: int, side: int
) -> torch.Tensor:
    """``(n, per_side^2)`` bool: which cells of each region hold tissue; every cell of an image
    without a mask (``masks[owner]`` is ``None``: it does not know its tissue, or has none) does.
    ``masks[i]``: image ``i``'s tissue at cells of ``side`` px (:func:`tissue_at`)."""
    owners = np.asarray(owners, dtype=np.int64)
    corners = np.asarray(corners, dtype=np.int64).reshape(-1, 2)
    out = torch.ones((len(owners), per_side * per_side), dtype=torch.bool)
    offsets = np.stack(np.divmod(np.arange(per_side * per_side), per_side), axis=1) * side
    for owner in np.unique(owners):  # one image at a time: reads its mask (metadata, no autograd)
        mask = masks[int(owner)]
        if mask is None:
            continue
        rows = np.flatnonzero(owners == owner)
        at = torch.from_numpy((corners[rows, None, :] + offsets[None]) // side)  # (n, cells, 2) cell indices
        inside = (at[..., 0] < mask.shape[0]) & (at[..., 1] < mask.shape[1])
        held = torch.zeros(inside.shape, dtype=torch.bool)
        held[inside] = mask.bool()[at[..., 0][inside], at[..., 1][inside]]
        out[torch.from_numpy(rows)] = held
    return out


def compose(
    levels: Sequence[Level],
    leaf: stages.PositionDraws,
    features: torch.Tensor,
    leaf_images: torch.Tensor,
    n_images: int,
    control_variate: bool,
) -> torch.Tensor:
    """``(n_images, D)``: ``Psi_hat`` of each image from the leaf draws (``features``: ``(R, w, D)``,
    :func:`zoomin.models.stages.scatter_draws`; one leaf row per region of ``levels[-1]``, of image
    ``leaf_images[r]``) and the counted levels above them, composed from the bottom up."""
    inner = stages.position_estimate(leaf, features, leaf_images, n_images, control_variate)
    for depth in range(len(levels) - 1, -1, -1):
        parents = n_images if depth == 0 else len(levels[depth - 1].images)
        inner = stages.counted_estimate(levels[depth].draws, inner, parents, control_variate)
    return inner


def mean_per_image(values: torch.Tensor, images: torch.Tensor, n_images: int) -> torch.Tensor:
    """``(n_images,)``: the mean of ``values`` (``(M,)``) over the rows of each image (``images``: ``(M,)``)."""
    rows = torch.bincount(images, minlength=n_images).to(values.dtype)
    return values.new_zeros(n_images).index_add(0, images, values) / rows
