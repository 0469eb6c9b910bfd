"""The Zoom-In network: two-stage attention sampling (docs/method.md §2-§7), batched over images.

For a batch of images, and without ever materialising a full-resolution image:

1. ``V1 = image.view(s1)`` of every image, zero-padded to its tile grid (``ceil(H/T) x ceil(W/T)``
   tiles of ``k = round(T * s1)`` view pixels) and to the batch's largest grid; the attention net
   ``a`` runs once over the batch (masked so that each view's logits are those it gets alone), its
   logit map is average-pooled with kernel ``k`` to one logit per tile; softmax over each image's
   tiles -> ``a`` (``(B, tiles)``, zero on the padding).
2. Stage 1 (:func:`zoomin.models.stages.draw_counts`): ``N`` tiles per image drawn with
   replacement from ``a`` -> counts ``k_t``; the distinct drawn (image, tile) pairs.
3. For the drawn pairs only, ``V2_t = image.region_view(tile, s2)``; the attention net ``b`` runs
   over all of them in one call; softmax inside each tile -> ``b_t``.
4. Stage 2, the sub-tile sampler (:meth:`ZoomInNet.sample_subtiles`): ``min(k_t, positions)``
   distinct positions per drawn tile by Gumbel-top-k on ``log b_t``, all tiles in one call;
   position ``(y, x)`` of a ``h2 x w2`` view is the sub-tile centred on full-resolution
   ``(row*T + (y + 0.5) * T/h2, col*T + (x + 0.5) * T/w2)``.
5. ``f`` runs on all sub-tiles of the batch in one call; the estimators give ``E_t`` per pair and
   ``Psi_hat`` per image as segment sums (:func:`zoomin.models.stages.position_estimate`,
   :func:`~zoomin.models.stages.counted_estimate`; values and gradients unbiased, with or without
   the control variate, ``ZoomInParams.control_variate``); ``logits = g(Psi_hat)``.

No Python loop in the forward or backward pass grows with the batch, the draws or the drawn tiles,
except the loops that READ pixels through :class:`~zoomin.image_access.ImageAccess` (the views,
the drawn tiles' regions and the sub-tiles, :mod:`zoomin.models.batching`), which are outside the
autograd graph. Each image's :class:`~zoomin.models.output.Attention` is sliced from the batch's
tensors when it is read (:class:`~zoomin.models.output.LazyAttention`).

``sampling="topk"`` is the deterministic inference variant: the ``N`` draws are allocated to tiles
by largest-remainder rounding of ``N * a`` (the expected counts, rounded; with flat attention this
is simply the top-``N`` tiles), and each tile takes the top-``k_t`` positions of ``b_t``. The same
estimator weights are used, so the representation is on the same scale as the sampled one.

At inference (eval mode, no autograd) the same computation runs in bounded memory
(:mod:`zoomin.models.bounded_memory`): the stage-1 logits band by band from each image's view, the
stage-2 views, the sub-tile draws and the sub-tile features in chunks of ``chunk_pixels`` pixels;
the Monte Carlo draws are taken in the same order from the same generator, so on the CPU the result
is that of the whole-batch computation up to float rounding.

The contrastive branch (``contrastive_logits``) runs the same pipeline with ``a`` and ``b_t``
replaced by ``normalise(1 - a)`` and ``normalise(1 - b_t)``.

``tissue_only`` (whole slides): tiles without tissue in the slide's tissue mask
(``SlideImage.tile_mask``, from the slide cache) get zero stage-1 attention, as slide pipelines that
work on tissue patches only (CLAM, MIL) do; images that have no tissue mask are unaffected.

The estimator weights are looked up on :mod:`zoomin.estimators` at call time, so tests can
substitute a deliberately broken one and check that the unbiasedness test notices.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from zoomin import sampling as samplers
from zoomin.image_access import ImageAccess, scaled_length
from zoomin.models import stages
from zoomin.models.attention import AttentionNet
from zoomin.models.base import AttentionSamplingClassifier
from zoomin.models.batching import extent_mask, read_patches, read_regions, read_views
from zoomin.models.bounded_memory import StreamsAtInference, banded_logits, row_slices
from zoomin.models.distributions import complement, entropy
from zoomin.models.features import build_feature_net
from zoomin.models.output import (
    Attention,
    AttentionMap,
    LazyAttention,
    Representation,
    SampledRegions,
    check_sampling,
)
from zoomin.models.params import ZoomInParams


@dataclass
class DrawnBatch:
    """What one :meth:`ZoomInNet.represent` drew, kept to build each image's attention on demand."""

    grids: list[tuple[int, int]]  # each image's tile grid (rows, cols)
    shape: tuple[int, int]  # the batch's padded grid
    a: torch.Tensor  # (B, rows * cols of the padded grid) stage-1 attention
    tiles: stages.CountDraws  # the distinct drawn (image, tile) pairs
    b: torch.Tensor  # (M, h2 * w2) stage-2 attention of each pair
    pair_images: np.ndarray  # (M,) image of each pair
    pair_cells: np.ndarray  # (M, 2) (row, col) of each pair's tile
    subtile_images: np.ndarray  # (K,) image of each sampled sub-tile, in draw order
    subtile_pairs: np.ndarray  # (K,) pair of each sampled sub-tile
    centres: np.ndarray  # (K, 2) full-resolution (y, x) centres


class ZoomInNet(AttentionSamplingClassifier, StreamsAtInference):
    """Two-stage attention-sampling classifier; see the module docstring.

    ``params`` default to :class:`~zoomin.models.params.ZoomInParams`'s defaults;
    ``feature_net`` overrides the named ``feature`` network (it must have an ``out_dim``).
    """

    def __init__(self, num_classes: int, params: ZoomInParams | None = None, feature_net: nn.Module | None = None):
        super().__init__()
        params = params if params is not None else ZoomInParams()
        self.params = params
        self.tile = params.tile
        self.subtile = params.subtile
        self.s1 = params.s1
        self.s2 = params.s2
        self.n = params.n
        self.control_variate = params.control_variate
        self.pool = int(round(self.tile * self.s1))
        self.view2 = scaled_length(self.tile, self.s2)
        self.tile_attention = AttentionNet(params.attention_activation)
        self.subtile_attention = AttentionNet(params.attention_activation)
        self.features = feature_net if feature_net is not None else build_feature_net(params.feature)
        self.classifier = nn.Linear(self.features.out_dim, num_classes)

    # ----------------------------------------------------------------- public API
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

        # Stage 1: the tile attention a of every image (B, tiles of the padded grid); N draws each
        logits = self._batch_tile_logits(images, grids, shape)
        a = torch.softmax(logits.reshape(count, -1), dim=1)
        support = torch.isfinite(logits).reshape(count, -1)  # each image's tiles (and tissue)
        q, counts = self._allocate(a, sampling, generator, contrast, support=support)
        tiles = stages.counted_cells(q, counts)  # the M distinct drawn (image, tile) pairs
        pair_images = tiles.row.cpu().numpy()
        pair_cells = np.stack(np.divmod(tiles.cell.cpu().numpy(), shape[1]), axis=1)

        # Stage 2: b_t of every drawn tile (M, positions); min(k_t, positions) distinct draws each
        b = self._pair_probs(images, pair_images, pair_cells)
        subtiles = self.sample_subtiles(complement(b) if contrast else b, tiles, sampling, generator)
        subtile_pairs, rank = np.nonzero(subtiles.valid.cpu().numpy())  # the K sub-tiles, pair by pair
        positions = subtiles.positions.cpu().numpy()[subtile_pairs, rank]
        centres = subtile_centre_array(pair_cells[subtile_pairs], positions, self.tile, self.view2)

        # f on the K sub-tiles; E_t per pair, then Psi_hat per image (segment sums of weighted draws)
        sampled = self.subtile_features(images, pair_images[subtile_pairs], centres)
        features = stages.scatter_draws(sampled, subtiles.valid)
        control = self.control_variate and torch.is_grad_enabled()
        inner = stages.position_estimate(subtiles, features, tiles.row, count, control)
        psi = stages.counted_estimate(tiles, inner, count, control)

        pairs_per_image = torch.bincount(tiles.row, minlength=count).to(a.dtype)
        # chunk by chunk at inference: no temporaries the size of every opened tile's b_t
        entropies = [entropy(b[part]) for part in row_slices(len(b), b.shape[1], self.chunk_budget())]
        subtile_entropy = a.new_zeros(count).index_add(0, tiles.row, torch.cat(entropies)) / pairs_per_image
        drawn = DrawnBatch(
            grids, shape, a, tiles, b, pair_images, pair_cells, pair_images[subtile_pairs], subtile_pairs, centres
        )
        attention = LazyAttention(count, lambda i: self._attention(drawn, i, images[i]))
        return Representation(psi, entropy(a) + subtile_entropy, attention)

    def sample_subtiles(
        self,
        probs: torch.Tensor,
        tiles: stages.CountDraws,
        sampling: str,
        generator: torch.Generator | None,
    ) -> stages.PositionDraws:
        """Stage 2, the sub-tile sampler: ``min(k_t, positions)`` distinct positions of each drawn
        tile's distribution (``probs``: ``(M, h2 * w2)``, one row per drawn pair), all tiles in one
        call in training (Gumbel-top-k; the top positions for ``sampling="topk"``), with their weights. At inference
        the tiles draw ``chunk_pixels`` positions at a time, with the width of the whole batch (the same
        random numbers in the same order), so that the Gumbel keys and ranks of every drawn tile never
        exist at once."""
        width = max(1, min(int(tiles.count.max()), probs.shape[-1])) if len(probs) else 1
        chunks = row_slices(len(probs), probs.shape[-1], self.chunk_budget()) or [slice(0, 0)]
        parts = [stages.draw_positions(probs[part], tiles.count[part], sampling, generator, width) for part in chunks]
        return stages.concatenate_positions(parts)

    def exact_representation(self, image: ImageAccess) -> torch.Tensor:
        """The exact ``Psi = sum_t a_t sum_j b_tj f(S_tj)`` over every tile and sub-tile (small images)."""
        rows, cols = self.grid(image)
        a = torch.softmax(self.tile_logits([image])[0].reshape(-1), dim=0)
        cells = np.stack(np.divmod(np.arange(rows * cols), cols), axis=1)
        b = self._pair_probs([image], np.zeros(len(cells), dtype=int), cells)
        positions = np.tile(np.arange(b.shape[1]), len(cells))
        centres = subtile_centre_array(np.repeat(cells, b.shape[1], axis=0), positions, self.tile, self.view2)
        feats = self.features(read_patches([image], np.zeros(len(centres), dtype=int), centres, self.subtile, self))
        feats = feats.reshape(len(cells), b.shape[1], -1)
        return torch.einsum("t,tj,tjd->d", a, b, feats)

    @torch.no_grad()
    def attention_maps(self, image: ImageAccess, tiles: Sequence[int] | None = None) -> Attention:
        """Stage-1 attention and the stage-2 attention of ``tiles`` (default: all tiles if at most
        64, else the 16 with the highest attention), detached on the CPU; nothing is sampled."""
        rows, cols = self.grid(image)
        a = torch.softmax(self.tile_logits([image])[0].reshape(-1), dim=0)
        if tiles is None:
            tiles = range(a.numel()) if a.numel() <= 64 else samplers.top_k(a, 16).tolist()
        tiles = list(tiles)
        cells = np.array([divmod(t, cols) for t in tiles], dtype=int).reshape(-1, 2)
        b = self._pair_probs([image], np.zeros(len(tiles), dtype=int), cells)
        return Attention(
            image_size=image.size,
            stage1=AttentionMap(a.reshape(rows, cols), (0.0, 0.0), (self.tile, self.tile)),
            stage2={t: self._tile_map(cells[m], b[m]) for m, t in enumerate(tiles)},
        ).detached()

    # ----------------------------------------------------------------- stage 1
    def grid(self, image: ImageAccess) -> tuple[int, int]:
        """Tile grid ``(rows, cols)`` of an image."""
        height, width = image.size
        return math.ceil(height / self.tile), math.ceil(width / self.tile)

    def tile_logits(self, images: Sequence[ImageAccess]) -> list[torch.Tensor]:
        """Stage 1: one ``(rows, cols)`` logit map per image, from the attention net over ``V1``
        (band by band at inference, :func:`zoomin.models.bounded_memory.banded_logits`); tiles
        without tissue (``tissue_only``) are ``-inf``."""
        grids = [self.grid(image) for image in images]
        shape = (max(rows for rows, _ in grids), max(cols for _, cols in grids))
        logits = self._batch_tile_logits(images, grids, shape)
        return [logits[i, :rows, :cols] for i, (rows, cols) in enumerate(grids)]

    def _batch_tile_logits(
        self, images: Sequence[ImageAccess], grids: list[tuple[int, int]], shape: tuple[int, int]
    ) -> torch.Tensor:
        """``(B, *shape)`` tile logits of a batch, ``-inf`` outside each image's grid."""
        if self.streams():
            logits = torch.full((len(images),) + shape, float("-inf"), device=next(self.parameters()).device)
            for i, (image, (rows, cols)) in enumerate(zip(images, grids)):  # inference: one image at a time
                logits[i, :rows, :cols] = banded_logits(
                    self.tile_attention, image, self.s1, (rows, cols), self.pool, self.chunk_pixels, self
                )
        else:
            pixels = (shape[0] * self.pool, shape[1] * self.pool)
            extents = [(rows * self.pool, cols * self.pool) for rows, cols in grids]
            views = read_views(images, self.s1, pixels, self)
            mask = extent_mask(extents, pixels, views.device)
            logits = F.avg_pool2d(self.tile_attention(views, mask)[:, None], self.pool)[:, 0]
            inside = extent_mask(grids, shape, views.device)
            if inside is not None:
                logits = logits.masked_fill(inside[:, 0] == 0, float("-inf"))
        if self.params.tissue_only:
            logits = self._without_background(images, logits)
        return logits

    def _without_background(self, images: Sequence[ImageAccess], logits: torch.Tensor) -> torch.Tensor:
        """``logits`` with the tiles that hold no tissue set to -inf (zero attention, never drawn),
        for images that know their tissue (whole slides: ``tile_mask``) and have some."""
        background = np.zeros(logits.shape, dtype=bool)
        for i, image in enumerate(images):  # reads each slide's tissue mask (metadata, no autograd)
            tissue = image.tile_mask(self.tile)
            if tissue is not None and tissue.any():
                tissue = np.asarray(tissue, dtype=bool)
                background[i, : tissue.shape[0], : tissue.shape[1]] = ~tissue
        if not background.any():
            return logits
        return logits.masked_fill(torch.from_numpy(background).to(logits.device), float("-inf"))

    def _allocate(
        self,
        a: torch.Tensor,
        sampling: str,
        generator: torch.Generator | None,
        contrast: bool,
        support: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The tile distribution drawn from and the counts ``k_t`` of the ``N`` draws, per row of ``a``
        (``(..., tiles)``). Contrastive: ``normalise(1 - a)`` on ``support`` (each image's tiles),
        and on the tissue under ``tissue_only``."""
        q = a
        if contrast:
            if self.params.tissue_only:  # the complement stays on the tissue too
                support = (a > 0) if support is None else support & (a > 0)
            q = complement(a, support)
        return q, stages.draw_counts(q, self.n, sampling, generator)

    # ----------------------------------------------------------------- stage 2
    def _pair_log_probs(
        self, images: Sequence[ImageAccess], owners: np.ndarray, cells: np.ndarray, log: bool = True
    ) -> torch.Tensor:
        """``log b_t`` (``b_t`` with ``log=False``) over the ``h2*w2`` positions of tile ``cells[m]``
        (row, col) of image ``images[owners[m]]``: all tiles in one call in training, ``chunk_pixels``
        at a time at inference, where each chunk's logits are normalised before the next is read."""
        corners = [(int(row) * self.tile, int(col) * self.tile) for row, col in cells]
        parts = []
        for part in row_slices(len(corners), self.view2 * self.view2, self.chunk_budget()):
            views = read_regions(images, owners[part], corners[part], self.tile, self.s2, self.view2, self)
            log_b = torch.log_softmax(self.subtile_attention(views).reshape(len(views), -1), dim=1)
            parts.append(log_b if log else log_b.exp())
        return torch.cat(parts) if len(parts) != 1 else parts[0]

    def _pair_probs(self, images: Sequence[ImageAccess], owners: np.ndarray, cells: np.ndarray) -> torch.Tensor:
        """``b_t`` of the tiles at ``cells`` (:meth:`_pair_log_probs`)."""
        return self._pair_log_probs(images, owners, cells, log=False)

    def subtile_log_probs(
        self, images: Sequence[ImageAccess], tiles: Sequence[int], owners: Sequence[int]
    ) -> torch.Tensor:
        """Stage 2: ``log b_t`` over the ``h2*w2`` positions of each tile ``tiles[m]`` of image
        ``images[owners[m]]`` -> ``(len(tiles), h2*w2)``."""
        cells = np.array([divmod(t, self.grid(images[o])[1]) for t, o in zip(tiles, owners)], dtype=int)
        return self._pair_log_probs(images, np.asarray(owners, dtype=int), cells.reshape(-1, 2))

    def subtile_centres(self, image: ImageAccess, tile: int, positions: torch.Tensor) -> torch.Tensor:
        """Full-resolution ``(y, x)`` centres of the sub-tiles at ``positions`` of ``tile``."""
        positions = np.asarray(positions.detach().cpu() if hasattr(positions, "detach") else positions).reshape(-1)
        cells = np.tile(np.array(divmod(tile, self.grid(image)[1])), (len(positions), 1))
        return torch.from_numpy(subtile_centre_array(cells, positions, self.tile, self.view2))

    # ----------------------------------------------------------------- attention output
    def _tile_map(self, cell: np.ndarray, b: torch.Tensor) -> AttentionMap:
        """``b_t`` of the tile at ``cell`` (row, col) as a map over that tile (``view2 x view2`` cells)."""
        step = self.tile / self.view2
        origin = (int(cell[0]) * self.tile, int(cell[1]) * self.tile)
        return AttentionMap(b.reshape(self.view2, self.view2), origin, (step, step))

    def _attention(self, drawn: DrawnBatch, i: int, image: ImageAccess) -> Attention:
        """Image ``i``'s attention, sliced from the batch's tensors (read on demand)."""
        rows, cols = drawn.grids[i]
        padded = drawn.shape
        pairs = np.flatnonzero(drawn.pair_images == i)
        subtiles = np.flatnonzero(drawn.subtile_images == i)
        own = drawn.pair_cells[:, 0] * cols + drawn.pair_cells[:, 1]  # tile index in the image's own grid
        return Attention(
            image_size=image.size,
            stage1=AttentionMap(drawn.a[i].reshape(padded)[:rows, :cols], (0.0, 0.0), (self.tile, self.tile)),
            stage2={int(own[m]): self._tile_map(drawn.pair_cells[m], drawn.b[m]) for m in pairs},
            sampled=SampledRegions(
                torch.from_numpy(drawn.centres[subtiles]),
                self.subtile,
                torch.from_numpy(own[drawn.subtile_pairs[subtiles]]),
            ),
            counts=drawn.tiles.counts[i].reshape(padded)[:rows, :cols],
        )


def subtile_centre_array(cells: np.ndarray, positions: np.ndarray, tile: int, view2: int) -> np.ndarray:
    """``(n, 2)`` full-resolution ``(y, x)`` centres of the sub-tiles at ``positions`` (flat indices
    into a ``view2 x view2`` stage-2 view) of the tiles at ``cells`` (``(n, 2)``: row, col)."""
    step = tile / view2
    y, x = np.divmod(np.asarray(positions, dtype=np.int64), view2)
    cells = np.asarray(cells, dtype=np.int64).reshape(-1, 2)
    return np.stack([cells[:, 0] * tile + (y + 0.5) * step, cells[:, 1] * tile + (x + 0.5) * step], axis=1)
