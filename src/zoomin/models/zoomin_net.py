"""The Zoom-In network: two-stage attention sampling (docs/method.md §2-§7).

Per image, and without ever materialising the full-resolution image:

1. ``V1 = image.view(s1)``, zero-padded to the tile grid (``ceil(H/T) x ceil(W/T)`` tiles of
   ``k = round(T * s1)`` view pixels); the attention net ``a`` runs once over it and its logit map
   is average-pooled with kernel ``k`` to one logit per tile; softmax over tiles -> ``a``.
2. ``N`` tiles are drawn with replacement from ``a`` -> counts ``k_t``.
3. For the unique drawn tiles only, ``V2_t = image.region_view(tile, s2)``; the attention net ``b``
   runs over all of them (whole batch, one call); softmax inside each tile -> ``b_t``.
4. ``min(k_t, positions)`` distinct positions per tile by Gumbel-top-k on ``log b_t``; position
   ``(y, x)`` of a ``h2 x w2`` view is the sub-tile centred on full-resolution
   ``(row*T + (y + 0.5) * T/h2, col*T + (x + 0.5) * T/w2)``.
5. ``f`` runs on all sub-tiles of the batch in one call; the estimators of :mod:`zoomin.estimators`
   give ``E_t`` and ``Psi_hat`` (values and gradients unbiased); ``logits = g(Psi_hat)``.

``sampling="topk"`` is the deterministic inference variant: the ``N`` draws are allocated to tiles
by largest-remainder rounding of ``N * a`` (the expected counts, rounded; with flat attention this
is simply the top-``N`` tiles), and each tile takes the top-``k_t`` positions of ``b_t``. The same
estimator weights are used, so the representation is on the same scale as the sampled one.

At inference (eval mode, no autograd) the same computation runs in bounded memory
(:mod:`zoomin.models.bounded_memory`): the stage-1 logits band by band from the image's view, the
stage-2 views and the sub-tile features in chunks of ``chunk_pixels`` pixels; the Monte Carlo draws
are taken in the same order from the same generator, so on the CPU the result is that of the
whole-batch computation up to float rounding. Training (autograd on) keeps the whole-batch path.

The contrastive branch (``contrastive_logits``) runs the same pipeline with ``a`` and ``b_t``
replaced by ``normalise(1 - a)`` and ``normalise(1 - b_t)``.

``tissue_only`` (whole slides): tiles without tissue in the slide's tissue mask
(``SlideImage.tile_mask``, from the slide cache) get zero stage-1 attention, as slide pipelines that
work on tissue patches only (CLAM, MIL) do; images that have no tissue mask are unaffected.

The estimators are looked up on the :mod:`zoomin.estimators` module at call time, so tests can
substitute a deliberately broken one and check that the unbiasedness test notices.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from zoomin import estimators
from zoomin import sampling as draws
from zoomin.image_access import ImageAccess, scaled_length
from zoomin.models.attention import AttentionNet
from zoomin.models.base import AttentionSamplingClassifier
from zoomin.models.batching import run_grouped, to_module
from zoomin.models.bounded_memory import CHUNK_PIXELS, banded_logits, chunks
from zoomin.models.distributions import complement, entropy, largest_remainder_counts
from zoomin.models.features import build_feature_net
from zoomin.models.output import Attention, AttentionMap, Representation, SampledRegions, check_sampling
from zoomin.models.params import ZoomInParams


class ZoomInNet(AttentionSamplingClassifier):
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
        self.pool = int(round(self.tile * self.s1))
        self.view2 = scaled_length(self.tile, self.s2)
        self.tile_attention = AttentionNet(params.attention_activation)
        self.subtile_attention = AttentionNet(params.attention_activation)
        self.features = feature_net if feature_net is not None else build_feature_net(params.feature)
        self.classifier = nn.Linear(self.features.out_dim, num_classes)
        self.chunk_pixels = CHUNK_PIXELS  # inference only: pixels per band / chunk (module docstring)

    def streams(self) -> bool:
        """Whether a call computes in bounded memory (eval mode, autograd off: inference)."""
        return not self.training and not torch.is_grad_enabled()

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
        tile_probs = [torch.softmax(logits.reshape(-1), dim=0) for logits in self.tile_logits(images)]
        plans = [self._allocate(a, sampling, generator, contrast) for a in tile_probs]
        pairs = [(i, t) for i, (_, counts) in enumerate(plans) for t in counts.nonzero()[:, 0].tolist()]
        b, chosen, positions, subtile_entropy = self._subtile_draws(
            images, pairs, plans, sampling, generator, contrast
        )

        centres = [self.subtile_centres(images[i], t, positions[m]) for m, (i, t) in enumerate(pairs)]
        feats = self._features_by_pair(images, pairs, centres)

        by_image = [[m for m, (j, _) in enumerate(pairs) if j == i] for i in range(len(images))]
        tile_estimates = [
            {
                pairs[m][1]: estimators.expectation_without_replacement(chosen[m], positions[m], feats[m])
                for m in mine
            }
            for mine in by_image
        ]
        psi = torch.stack(
            [
                estimators.two_stage_expectation(q, counts, tile_estimates[i])
                for i, (q, counts) in enumerate(plans)
            ]
        )
        entropies = torch.stack(
            [entropy(a) + subtile_entropy[mine].mean() for a, mine in zip(tile_probs, by_image)]
        )
        attention = []
        for image, a, (_, counts), mine in zip(images, tile_probs, plans, by_image):
            rows, cols = self.grid(image)
            attention.append(
                Attention(
                    image_size=image.size,
                    stage1=AttentionMap(a.reshape(rows, cols), (0.0, 0.0), (self.tile, self.tile)),
                    stage2={pairs[m][1]: self._tile_map(image, pairs[m][1], b[m]) for m in mine},
                    sampled=SampledRegions(
                        torch.cat([centres[m] for m in mine]),
                        self.subtile,
                        torch.cat([torch.full((len(centres[m]),), pairs[m][1]) for m in mine]),
                    ),
                    counts=counts.reshape(rows, cols),
                )
            )
        return Representation(psi, entropies, attention)

    def exact_representation(self, image: ImageAccess) -> torch.Tensor:
        """The exact ``Psi = sum_t a_t sum_j b_tj f(S_tj)`` over every tile and sub-tile (small images)."""
        a = torch.softmax(self.tile_logits([image])[0].reshape(-1), dim=0)
        tiles = list(range(a.numel()))
        b = self.subtile_log_probs([image], tiles, [0] * len(tiles)).exp()
        everywhere = torch.arange(b.shape[1], device=b.device)
        centres = torch.cat([self.subtile_centres(image, t, everywhere) for t in tiles])
        feats = self.features(to_module(image.patches(centres, self.subtile), self))
        feats = feats.reshape(len(tiles), b.shape[1], -1)
        return torch.einsum("t,tj,tjd->d", a, b, feats)

    @torch.no_grad()
    def attention_maps(self, image: ImageAccess, tiles: Sequence[int] | None = None) -> Attention:
        """Stage-1 attention and the stage-2 attention of ``tiles`` (default: all tiles if at most
        64, else the 16 with the highest attention), detached on the CPU; nothing is sampled."""
        rows, cols = self.grid(image)
        a = torch.softmax(self.tile_logits([image])[0].reshape(-1), dim=0)
        if tiles is None:
            tiles = range(a.numel()) if a.numel() <= 64 else draws.top_k(a, 16).tolist()
        tiles = list(tiles)
        b = self.subtile_log_probs([image], tiles, [0] * len(tiles)).exp()
        return Attention(
            image_size=image.size,
            stage1=AttentionMap(a.reshape(rows, cols), (0.0, 0.0), (self.tile, self.tile)),
            stage2={t: self._tile_map(image, t, b[m]) for m, t in enumerate(tiles)},
        ).detached()

    # ----------------------------------------------------------------- stages
    def grid(self, image: ImageAccess) -> tuple[int, int]:
        """Tile grid ``(rows, cols)`` of an image."""
        height, width = image.size
        return math.ceil(height / self.tile), math.ceil(width / self.tile)

    def tile_logits(self, images: Sequence[ImageAccess]) -> list[torch.Tensor]:
        """Stage 1: one ``(rows, cols)`` logit map per image, from the attention net over ``V1``
        (band by band at inference, :func:`zoomin.models.bounded_memory.banded_logits`)."""
        if self.streams():
            return [
                banded_logits(
                    self.tile_attention, image, self.s1, self.grid(image), self.pool, self.chunk_pixels, self
                )
                for image in images
            ]
        views = []
        for image in images:
            rows, cols = self.grid(image)
            view = to_module(image.view(self.s1), self)
            view = view[:, : rows * self.pool, : cols * self.pool]
            pad_h = rows * self.pool - view.shape[1]
            pad_w = cols * self.pool - view.shape[2]
            views.append(F.pad(view, (0, pad_w, 0, pad_h)))
        logits = run_grouped(self._pooled_tile_logits, views)
        if self.params.tissue_only:
            logits = [self._without_background(image, tile_logits) for image, tile_logits in zip(images, logits)]
        return logits

    def _without_background(self, image: ImageAccess, logits: torch.Tensor) -> torch.Tensor:
        """``logits`` with the tiles that hold no tissue set to -inf (zero attention, never drawn),
        for images that know their tissue (whole slides: ``tile_mask``); unchanged otherwise."""
        tissue = image.tile_mask(self.tile)
        if tissue is None or not tissue.any():
            return logits
        return logits.masked_fill(~tissue.to(logits.device), float("-inf"))

    def _pooled_tile_logits(self, views: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(self.tile_attention(views)[:, None], self.pool)[:, 0]

    def subtile_log_probs(
        self, images: Sequence[ImageAccess], tiles: Sequence[int], owners: Sequence[int]
    ) -> torch.Tensor:
        """Stage 2: ``log b_t`` over the ``h2*w2`` positions of each tile ``tiles[m]`` of image
        ``images[owners[m]]``, all tiles in one call -> ``(len(tiles), h2*w2)``."""
        views = []
        for tile, owner in zip(tiles, owners):
            image = images[owner]
            row, col = divmod(tile, self.grid(image)[1])
            views.append(image.region_view(row * self.tile, col * self.tile, self.tile, self.s2))
        logits = self.subtile_attention(to_module(torch.stack(views), self))
        return torch.log_softmax(logits.reshape(len(views), -1), dim=1)

    # ----------------------------------------------------------------- helpers
    def _allocate(
        self, a: torch.Tensor, sampling: str, generator: torch.Generator | None, contrast: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The tile distribution used for drawing, and the counts ``k_t`` of the ``N`` draws."""
        q = complement(a) if contrast else a
        if contrast and self.params.tissue_only:  # the complement stays on the tissue too
            q = q * (a > 0)
            q = q / q.sum()
        if sampling == "topk":
            counts = largest_remainder_counts(q, self.n).to(q.device)
        else:
            counts = draws.counts(draws.sample_with_replacement(q, self.n, generator), q.numel())
        return q, counts

    def _subtile_draws(
        self,
        images: Sequence[ImageAccess],
        pairs: list[tuple[int, int]],
        plans: list[tuple[torch.Tensor, torch.Tensor]],
        sampling: str,
        generator: torch.Generator | None,
        contrast: bool,
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
        """Stage 2 for every (image, tile) pair: ``b_t``, the distribution drawn from (``b_t`` or
        its complement), the distinct positions drawn (in draw order) and the entropy of ``b_t``.

        All pairs in one call in training; in chunks of ``chunk_pixels`` at inference, drawing the
        same random numbers in the same order (one row of noise per pair, the same top-k width).
        """
        cells = self.view2 * self.view2
        wanted = [int(plans[i][1][t]) for i, t in pairs]
        width = max(min(w, cells) for w in wanted)
        size = self.chunk_pixels // cells if self.streams() else len(pairs)
        b_rows: list[torch.Tensor] = []
        chosen_rows: list[torch.Tensor] = []
        positions: list[torch.Tensor] = []
        entropies = []
        for start in range(0, len(pairs), max(1, size)):
            part = pairs[start : start + max(1, size)]
            b = self.subtile_log_probs(images, [t for _, t in part], [i for i, _ in part]).exp()
            chosen = complement(b) if contrast else b
            log_probs = torch.log(chosen)
            if sampling == "topk":
                order = draws.top_k(log_probs, width)
            else:
                order = draws.gumbel_top_k(log_probs, width, generator)
            available = (chosen > 0).sum(dim=1).tolist()
            for row, m in enumerate(range(start, start + len(part))):
                positions.append(order[row, : min(wanted[m], available[row])])
            b_rows.extend(b.unbind(0))
            chosen_rows.extend(chosen.unbind(0))
            entropies.append(entropy(b))
        return b_rows, chosen_rows, positions, torch.cat(entropies)

    def _tile_map(self, image: ImageAccess, tile: int, b: torch.Tensor) -> AttentionMap:
        """``b_t`` of ``tile`` as a map over that tile (``view2 x view2`` cells)."""
        row, col = divmod(tile, self.grid(image)[1])
        step = self.tile / self.view2
        return AttentionMap(b.reshape(self.view2, self.view2), (row * self.tile, col * self.tile), (step, step))

    def subtile_centres(self, image: ImageAccess, tile: int, positions: torch.Tensor) -> torch.Tensor:
        """Full-resolution ``(y, x)`` centres of the sub-tiles at ``positions`` of ``tile``."""
        row, col = divmod(tile, self.grid(image)[1])
        step = self.tile / self.view2
        y = torch.div(positions, self.view2, rounding_mode="floor").double()
        x = (positions % self.view2).double()
        return torch.stack(
            [row * self.tile + (y + 0.5) * step, col * self.tile + (x + 0.5) * step], dim=1
        ).cpu()

    def _features_by_pair(
        self,
        images: Sequence[ImageAccess],
        pairs: list[tuple[int, int]],
        centres: list[torch.Tensor],
    ) -> list[torch.Tensor]:
        """``f`` of every sampled sub-tile of the batch, split back per pair: one call in training,
        chunks of ``chunk_pixels`` at inference (only one chunk's sub-tiles are ever read at once)."""
        subtiles = [(i, centre) for (i, _), mine in zip(pairs, centres) for centre in mine]
        if self.streams():
            runs = chunks(subtiles, self.subtile * self.subtile, self.chunk_pixels)
        else:
            runs = [subtiles]
        feats = torch.cat([self.features(to_module(self._patches(images, run), self)) for run in runs if run])
        return list(torch.split(feats, [len(c) for c in centres]))

    def _patches(self, images: Sequence[ImageAccess], subtiles: Sequence[tuple[int, torch.Tensor]]) -> torch.Tensor:
        """Full-resolution sub-tiles of ``(image index, centre)`` pairs, one read per run of one image."""
        parts, start = [], 0
        while start < len(subtiles):
            owner, stop = subtiles[start][0], start
            while stop < len(subtiles) and subtiles[stop][0] == owner:
                stop += 1
            centres = torch.stack([centre for _, centre in subtiles[start:stop]])
            parts.append(images[owner].patches(centres, self.subtile))
            start = stop
        return torch.cat(parts)
