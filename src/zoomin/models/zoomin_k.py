"""The K-stage Zoom-In network (docs/method.md §14-§15): slide -> region -> ... -> tile -> sub-tile.

Zoom-In (:mod:`zoomin.models.zoomin_net`) looks at the whole image once at low resolution to pick
tiles. On a 200,000 px slide at the Camelyon16 settings that one view is 3,125 px a side; a third
stage keeps every view small. With ``regions = [R_1, ..., R_{K-1}]`` and ``scales = [s_1, ..., s_K]``
(:class:`zoomin.models.params.ZoomInKParams`), for a batch of images:

1. Stage 1: the attention net runs over each image's view at ``s_1``; its logits are pooled to one
   per cell of side ``R_1``; softmax over each image's cells -> ``a``. ``N`` cells drawn with
   replacement (:func:`zoomin.models.stages.draw_counts`; N fixed, or from ``a``:
   :mod:`zoomin.models.adaptive_draws`) -> counts ``k``.
2. Stage k = 2..K-1: for every distinct region drawn at stage k-1, its view at ``s_k`` through
   stage k's attention net, pooled to its ``(R_{k-1} / R_k)^2`` cells; softmax inside the region
   (cells outside the image, and with ``tissue_only`` cells without tissue, get none); ``k_parent``
   cells drawn with replacement from it (all regions in one call) -> counts.
3. Stage K: for every distinct region drawn at stage K-1 (a tile of side ``R_{K-1}``), its view at
   ``s_K``, one logit per view pixel, softmax inside the tile; ``min(k_tile, positions)`` distinct
   positions by Gumbel-top-k, each the centre of a ``subtile`` px sub-tile (as Zoom-In's stage 2).
4. ``f`` on the drawn sub-tiles; ``Psi_hat`` composed from the bottom up (:func:`zoomin.models.kstage.compose`):
   a sub-tile's weight is the product of its weights along its path, ``(k_1/N)(a/sg a)`` at stage 1,
   ``(k_k/k_{k-1})(p/sg p)`` at every inner stage, the without-replacement weight at the last.

With K = 2 (``regions = [T]``, ``scales = [s1, s2]``) this is Zoom-In: the same random numbers in the
same order, the same outputs and gradients (``tests/models/test_zoomin_k.py``).

At inference (eval mode, autograd off) it runs in bounded memory (:mod:`zoomin.models.bounded_memory`):
stage 1 band by band, the views of every inner stage, the last stage's views and their draws, and
the sub-tiles' features in chunks of ``chunk_pixels`` pixels; every stage draws from the generator
in the same order as the whole-batch computation, so the result is the same. Only the stage-1
attention, the maps of the second stage (part of the output) and the N feature vectors stay; for
K >= 3 the last stage's maps are dropped once drawn.

The output's :class:`~zoomin.models.output.Attention` of an image: ``stage1`` the map over the
``R_1`` cells, ``stage2`` the map one stage down of each drawn stage-1 region (K = 2: ``b_t`` over
its sub-tile positions, as Zoom-In; K >= 3: the attention over its ``R_2`` cells), the sampled
sub-tiles with the stage-1 region each lies in, and the stage-1 counts. The entropy term is
``H(a)`` plus, for every later stage, the mean entropy of the maps of the image's drawn regions.

The estimator weights come from :mod:`zoomin.estimators` through :mod:`zoomin.models.stages`, looked
up at call time, so tests can substitute a broken one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from zoomin.image_access import ImageAccess, scaled_length
from zoomin.models import kstage, stages
from zoomin.models.adaptive_draws import draws_per_image
from zoomin.models.attention import AttentionNet
from zoomin.models.base import AttentionSamplingClassifier
from zoomin.models.batching import extent_mask, read_patches, read_regions, read_views
from zoomin.models.bounded_memory import StreamsAtInference, banded_logits, row_slices
from zoomin.models.distributions import complement, entropy
from zoomin.models.features import build_feature_net
from zoomin.models.output import Attention, AttentionMap, LazyAttention, Representation, SampledRegions, check_sampling
from zoomin.models.params import ZoomInKParams
from zoomin.models.zoomin_net import subtile_centre_array


@dataclass
class LeafDraws:
    """What the last stage drew: one row per region of the last counted level."""

    draws: stages.PositionDraws
    entropy: torch.Tensor  # (M,) entropy of each row's map
    maps: torch.Tensor | None  # (M, positions) the maps, kept only when they are the output's stage2 (K = 2)


@dataclass
class DrawnBatch:
    """What one :meth:`ZoomInKNet.represent` drew, kept to build each image's attention on demand."""

    grids: list[tuple[int, int]]
    shape: tuple[int, int]
    a: torch.Tensor
    levels: list[kstage.Level]
    leaf: LeafDraws
    subtile_images: np.ndarray  # (K,) image of each sampled sub-tile
    subtile_roots: np.ndarray  # (K,) stage-1 row each lies in
    centres: np.ndarray  # (K, 2)


class ZoomInKNet(AttentionSamplingClassifier, StreamsAtInference):
    """K-stage attention-sampling classifier; see the module docstring."""

    def __init__(self, num_classes: int, params: ZoomInKParams | None = None, feature_net: nn.Module | None = None):
        super().__init__()
        params = params if params is not None else ZoomInKParams()
        self.params = params
        self.regions = params.regions
        self.scales = params.scales
        self.subtile = params.subtile
        self.pools = tuple(int(round(side * scale)) for side, scale in zip(self.regions, self.scales))
        self.leaf_view = scaled_length(self.regions[-1], self.scales[-1])
        self.stage_attention = nn.ModuleList(AttentionNet(params.attention_activation) for _ in self.scales)
        self.features = feature_net if feature_net is not None else build_feature_net(params.feature)
        self.classifier = nn.Linear(self.features.out_dim, num_classes)

    # ----------------------------------------------------------------- the representation
    def represent(
        self,
        images: Sequence[ImageAccess],
        generator: torch.Generator | None = None,
        sampling: str = "sample",
        contrast: bool = False,
    ) -> Representation:
        """``Psi_hat`` for each image (``(B, D)``), the entropy term and the attention."""
        check_sampling(sampling)
        count = len(images)
        grids = [self.grid(image) for image in images]
        shape = (max(rows for rows, _ in grids), max(cols for _, cols in grids))
        tissue = self._leaf_tissue(images)

        # Stage 1: a over each image's R_1 cells; N draws with replacement (N fixed or from a)
        logits = self._stage1_logits(images, grids, shape, tissue)
        a = torch.softmax(logits.reshape(count, -1), dim=1)
        support = torch.isfinite(logits).reshape(count, -1)
        if contrast and self.params.tissue_only:  # the complement stays on the tissue too
            support = support & (a > 0)
        q = complement(a, support) if contrast else a
        drawn = stages.counted_cells(q, stages.draw_counts(q, draws_per_image(a, self.params), sampling, generator))
        cells = drawn.cell.cpu().numpy()
        first = kstage.Level(
            drawn, a, drawn.row.cpu().numpy(), np.stack(np.divmod(cells, shape[1]), axis=1) * self.regions[0],
            np.arange(len(cells)), self.regions[0],
        )
        levels = [first]
        term = entropy(a)

        # Stages 2..K-1: in each drawn region, k_region draws with replacement among its cells
        for stage in range(1, len(self.regions)):
            parent = levels[-1]
            log_p, support = self._inner_log_probs(stage, images, parent.images, parent.corners, tissue)
            p = log_p.exp()
            q = complement(p, support) if contrast else p
            drawn = stages.counted_cells(q, stages.draw_counts(q, parent.draws.count, sampling, generator))
            rows, cells = drawn.row.cpu().numpy(), drawn.cell.cpu().numpy()
            per_side = self.regions[stage - 1] // self.regions[stage]
            corners = kstage.child_corners(parent.corners[rows], cells, per_side, self.regions[stage])
            levels.append(kstage.Level(drawn, p, parent.images[rows], corners, parent.roots[rows], self.regions[stage]))
            term = term + kstage.mean_per_image(entropy(p), self._on_device(parent.images, a), count)

        # Stage K: min(k, positions) distinct sub-tile positions in each drawn tile
        tiles = levels[-1]
        leaf = self._leaf_draws(images, tiles, contrast, sampling, generator, keep_maps=len(levels) == 1)
        leaf_rows, rank = np.nonzero(leaf.draws.valid.cpu().numpy())
        positions = leaf.draws.positions.cpu().numpy()[leaf_rows, rank]
        centres = subtile_centre_array(tiles.corners[leaf_rows] // tiles.side, positions, tiles.side, self.leaf_view)
        owners = tiles.images[leaf_rows]

        features = stages.scatter_draws(self.subtile_features(images, owners, centres), leaf.draws.valid)
        control = self.params.control_variate and torch.is_grad_enabled()
        tile_images = self._on_device(tiles.images, a)
        psi = kstage.compose(levels, leaf.draws, features, tile_images, count, control)
        term = term + kstage.mean_per_image(leaf.entropy, tile_images, count)

        batch = DrawnBatch(grids, shape, a, levels, leaf, owners, tiles.roots[leaf_rows], centres)
        attention = LazyAttention(count, lambda i: self._attention(batch, i, images[i]))
        return Representation(psi, term, attention)

    def exact_representation(self, image: ImageAccess) -> torch.Tensor:
        """The exact ``Psi``: every reachable sub-tile's features weighted by the product of its
        attentions along the stages (small images; it runs every net over every region)."""
        rows, cols = self.grid(image)
        tissue = self._leaf_tissue([image])
        weights = torch.softmax(self._stage1_logits([image], [(rows, cols)], (rows, cols), tissue).reshape(-1), dim=0)
        corners = np.stack(np.divmod(np.arange(rows * cols), cols), axis=1) * self.regions[0]
        for stage in range(1, len(self.regions)):
            owners = np.zeros(len(corners), dtype=np.int64)
            log_p, support = self._inner_log_probs(stage, [image], owners, corners, tissue)
            per_side = self.regions[stage - 1] // self.regions[stage]
            keep = support.reshape(-1).cpu().numpy()  # the cells the image reaches (a region off the tissue has none)
            cells = np.tile(np.arange(per_side * per_side), len(corners))[keep]
            parents = np.repeat(np.arange(len(corners)), per_side * per_side)[keep]
            weights = (weights[:, None] * log_p.exp()).reshape(-1)[torch.from_numpy(keep).to(weights.device)]
            corners = kstage.child_corners(corners[parents], cells, per_side, self.regions[stage])
        owners = np.zeros(len(corners), dtype=np.int64)
        b = self._leaf_log_probs([image], owners, corners).exp()
        positions = np.tile(np.arange(b.shape[1]), len(corners))
        side = self.regions[-1]
        centres = subtile_centre_array(np.repeat(corners // side, b.shape[1], axis=0), positions, side, self.leaf_view)
        feats = self.features(read_patches([image], np.zeros(len(centres), dtype=int), centres, self.subtile, self))
        return torch.einsum("t,tj,tjd->d", weights, b, feats.reshape(len(corners), b.shape[1], -1))

    # ----------------------------------------------------------------- stage 1
    def grid(self, image: ImageAccess) -> tuple[int, int]:
        """Stage-1 grid ``(rows, cols)`` of an image (cells of ``regions[0]`` px)."""
        height, width = image.size
        return math.ceil(height / self.regions[0]), math.ceil(width / self.regions[0])

    def _stage1_logits(
        self,
        images: Sequence[ImageAccess],
        grids: list[tuple[int, int]],
        shape: tuple[int, int],
        tissue: list[torch.Tensor | None],
    ) -> torch.Tensor:
        """``(B, *shape)`` stage-1 cell logits, ``-inf`` outside each image's grid (and off its tissue)."""
        net, scale, pool = self.stage_attention[0], self.scales[0], self.pools[0]
        if self.streams():
            logits = torch.full((len(images),) + shape, float("-inf"), device=next(self.parameters()).device)
            for i, (image, (rows, cols)) in enumerate(zip(images, grids)):  # inference: one image at a time
                logits[i, :rows, :cols] = banded_logits(net, image, scale, (rows, cols), pool, self.chunk_pixels, self)
        else:
            pixels = (shape[0] * pool, shape[1] * pool)
            views = read_views(images, scale, pixels, self)
            mask = extent_mask([(rows * pool, cols * pool) for rows, cols in grids], pixels, views.device)
            logits = F.avg_pool2d(net(views, mask)[:, None], pool)[:, 0]
            inside = extent_mask(grids, shape, views.device)
            if inside is not None:
                logits = logits.masked_fill(inside[:, 0] == 0, float("-inf"))
        background = np.zeros(logits.shape, dtype=bool)
        for i, leaf_mask in enumerate(tissue):  # each slide's tissue (metadata, no autograd)
            if leaf_mask is not None:
                held = kstage.tissue_at(leaf_mask, self.regions[0] // self.regions[-1]).numpy()
                background[i, : held.shape[0], : held.shape[1]] = ~held
        if not background.any():
            return logits
        return logits.masked_fill(torch.from_numpy(background).to(logits.device), float("-inf"))

    def _leaf_tissue(self, images: Sequence[ImageAccess]) -> list[torch.Tensor | None]:
        """Each image's tissue at the leaf tiles (``tissue_only`` and a mask with some tissue), else ``None``."""
        if not self.params.tissue_only:
            return [None] * len(images)
        masks = [image.tile_mask(self.regions[-1]) for image in images]
        return [mask.bool() if mask is not None and bool(mask.any()) else None for mask in masks]

    # ----------------------------------------------------------------- inner stages
    def _inner_log_probs(
        self,
        stage: int,
        images: Sequence[ImageAccess],
        owners: np.ndarray,
        corners: np.ndarray,
        tissue: list[torch.Tensor | None],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Stage ``stage + 1`` (0-based ``stage`` in 1..K-2): ``log p`` over the cells of each region
        (``(n, cells)``; ``-inf`` on cells outside the image or off the tissue) and which cells are
        drawable, from the regions' views at that stage's scale, ``chunk_pixels`` at a time at inference."""
        outer, side = self.regions[stage - 1], self.regions[stage]
        per_side, pool = outer // side, self.pools[stage]
        view = per_side * pool
        parts = []
        for part in row_slices(len(owners), view * view, self.chunk_budget()):
            views = read_regions(images, owners[part], _pairs(corners[part]), outer, self.scales[stage], view, self)
            pooled = F.avg_pool2d(self.stage_attention[stage](views)[:, None], pool)[:, 0]
            parts.append(pooled.reshape(len(views), -1))
        logits = torch.cat(parts) if len(parts) != 1 else parts[0]
        sizes = [image.size for image in images]
        drawable = kstage.children_inside(sizes, owners, corners, per_side, side)
        at_side = [None if mask is None else kstage.tissue_at(mask, side // self.regions[-1]) for mask in tissue]
        drawable &= kstage.children_on_tissue(at_side, owners, corners, per_side, side)
        drawable = drawable.to(logits.device)
        return torch.log_softmax(logits.masked_fill(~drawable, float("-inf")), dim=1), drawable

    # ----------------------------------------------------------------- the last stage
    def _leaf_log_probs(self, images: Sequence[ImageAccess], owners: np.ndarray, corners: np.ndarray) -> torch.Tensor:
        """``log b`` over the sub-tile positions of the tiles at ``corners`` (all at once)."""
        views = read_regions(images, owners, _pairs(corners), self.regions[-1], self.scales[-1], self.leaf_view, self)
        return torch.log_softmax(self.stage_attention[-1](views).reshape(len(views), -1), dim=1)

    def _leaf_draws(
        self,
        images: Sequence[ImageAccess],
        tiles: kstage.Level,
        contrast: bool,
        sampling: str,
        generator: torch.Generator | None,
        keep_maps: bool,
    ) -> LeafDraws:
        """The last stage: ``min(k, positions)`` distinct positions of each drawn tile, chunk by chunk
        at inference (the draws of every chunk in the order of one call over all tiles)."""
        wanted = tiles.draws.count
        width = max(1, min(int(wanted.max()), self.leaf_view * self.leaf_view))
        draws, entropies, maps = [], [], []
        for part in row_slices(len(tiles.images), self.leaf_view * self.leaf_view, self.chunk_budget()):
            b = self._leaf_log_probs(images, tiles.images[part], tiles.corners[part]).exp()
            q = complement(b) if contrast else b
            draws.append(stages.draw_positions(q, wanted[part], sampling, generator, width))
            entropies.append(entropy(b))
            if keep_maps:
                maps.append(b)
        return LeafDraws(
            stages.concatenate_positions(draws),
            torch.cat(entropies) if len(entropies) != 1 else entropies[0],
            (torch.cat(maps) if len(maps) != 1 else maps[0]) if keep_maps else None,
        )

    @staticmethod
    def _on_device(values: np.ndarray, like: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.asarray(values, dtype=np.int64)).to(like.device)

    # ----------------------------------------------------------------- attention output
    def _second_stage_map(self, batch: DrawnBatch, row: int) -> AttentionMap:
        """The map one stage below stage-1 region ``row``: its sub-tile positions (K = 2), its cells (K >= 3)."""
        top, left = (int(v) for v in batch.levels[0].corners[row])
        corner = (top, left)
        if len(batch.levels) == 1:
            step = self.regions[0] / self.leaf_view
            return AttentionMap(batch.leaf.maps[row].reshape(self.leaf_view, self.leaf_view), corner, (step, step))
        per_side = self.regions[0] // self.regions[1]
        side = float(self.regions[1])
        return AttentionMap(batch.levels[1].probs[row].reshape(per_side, per_side), corner, (side, side))

    def _attention(self, batch: DrawnBatch, i: int, image: ImageAccess) -> Attention:
        """Image ``i``'s attention, sliced from the batch's tensors (read on demand)."""
        rows, cols = batch.grids[i]
        first = batch.levels[0]
        own = (first.corners[:, 0] // self.regions[0]) * cols + first.corners[:, 1] // self.regions[0]
        subtiles = np.flatnonzero(batch.subtile_images == i)
        return Attention(
            image_size=image.size,
            stage1=AttentionMap(batch.a[i].reshape(batch.shape)[:rows, :cols], (0.0, 0.0), (self.regions[0],) * 2),
            stage2={int(own[m]): self._second_stage_map(batch, m) for m in np.flatnonzero(first.images == i)},
            sampled=SampledRegions(
                torch.from_numpy(batch.centres[subtiles]),
                self.subtile,
                torch.from_numpy(own[batch.subtile_roots[subtiles]]),
            ),
            counts=first.draws.counts[i].reshape(batch.shape)[:rows, :cols],
        )


def _pairs(corners: np.ndarray) -> list[tuple[int, int]]:
    """``(n, 2)`` corners as ``(top, left)`` Python ints, as the image readers take them."""
    return [(int(top), int(left)) for top, left in np.asarray(corners).reshape(-1, 2)]
