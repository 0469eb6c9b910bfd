"""Top-K: differentiable patch selection (Cordonnier et al., CVPR 2021), the traffic-sign baseline.

Per image:

1. A scorer CNN runs on ``image.view(scale)``: four unpadded 3x3 convolutions (8, 16, 32, 1
   channels, ReLU between them) and an 8x8 max-pool give one score per cell of a ``rows x cols``
   grid, ``rows = (h - 8) // 8`` for a view ``h`` px high. Cell ``(i, j)`` stands for the
   full-resolution ``P x P`` patch centred on ``((i + 0.5) H / rows, (j + 0.5) W / cols)``.
2. The scores are min-max normalised to [0, 1] (``(s - min) / (max - min + 1e-5)``, the reference's
   ``zerooneeps``).
3. Training (train mode, ``sampling="sample"``): the perturbed top-k (:mod:`.perturbed_topk`,
   ``n_samples`` draws, noise std ``sigma_t``) gives ``k`` soft indicator vectors over the cells,
   and patch ``i`` is the indicator-weighted sum of the candidate patches. Only candidates with a
   non-zero weight in some indicator are read (``image.patches``): the others contribute nothing to
   the forward pass, and the estimator gives their indicator entries no gradient either, so this
   is exact (for either ``backward``: the exact Jacobian's, or its diagonal as in the reference); at
   most ``min(rows * cols, k * n_samples)`` patches, in practice the few cells whose
   normalised score lies within a few ``sigma`` of the k-th largest.
   Inference (eval mode, or ``sampling="topk"``, or once ``sigma_t`` has reached 0): the hard
   top-k cells, and only those ``k`` patches are read.
4. The feature network runs on the ``k`` patches; their features are averaged, then a dense layer
   with swish and the linear classifier give the logits.

``sigma_t = sigma * max(0, 1 - t / sigma_decay_steps)`` decays linearly to 0 as in the reference,
where ``t`` counts this module's forward passes in train mode (a buffer, so it is saved with the
weights and a resumed run continues the schedule); ``sigma_decay_steps: null`` keeps ``sigma``.

The entropy term is the reference's: the entropy of the softmax of the scores BEFORE normalisation,
returned in ``ModelOutput.entropy``; the training loss adds ``-entropy_lambda`` times its mean
(the reference's coefficient -0.01 is ``entropy_lambda: 0.01``).

Attention (one stage): that softmax over the grid as the map over the image, and the ``k`` cells
read as the sampled regions (in training, the cell each soft indicator weights most).

Departures from the reference, and why: docs/methods.md (Top-K).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from zoomin.errors import UserError
from zoomin.image_access import ImageAccess
from zoomin.models import perturbed_topk as ptopk
from zoomin.models.base import Classifier
from zoomin.models.batching import run_grouped, to_module, views_on
from zoomin.models.distributions import entropy
from zoomin.models.features import build_feature_net
from zoomin.models.output import Attention, AttentionMap, ModelOutput, SampledRegions, check_sampling
from zoomin.models.params import TopKParams
from zoomin.models.standardise import Standardise

SCORE_POOL = 8
NORMALISATION_EPS = 1e-5


class Scorer(nn.Module):
    """Maps a ``(B, 3, h, w)`` view to ``(B, (h - 8) // 8, (w - 8) // 8)`` scores."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            Standardise(),
            nn.Conv2d(3, 8, 3),
            nn.ReLU(),
            nn.Conv2d(8, 16, 3),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3),
            nn.ReLU(),
            nn.Conv2d(32, 1, 3),
            nn.MaxPool2d(SCORE_POOL),
        )

    def forward(self, views: torch.Tensor) -> torch.Tensor:
        return self.layers(views)[:, 0]

    @staticmethod
    def grid(height: int, width: int) -> tuple[int, int]:
        return (height - SCORE_POOL) // SCORE_POOL, (width - SCORE_POOL) // SCORE_POOL


def normalise_scores(scores: torch.Tensor) -> torch.Tensor:
    """Min-max normalisation of a 1-D score vector to [0, 1) (the reference's ``zerooneeps(1e-5)``)."""
    low, high = scores.min(), scores.max()
    return (scores - low) / (high - low + NORMALISATION_EPS)


class TopKNet(Classifier):
    """Differentiable top-k patch selection; see the module docstring."""

    steps: torch.Tensor

    def __init__(self, num_classes: int, params: TopKParams):
        super().__init__()
        self.params = params
        self.scale = params.scale
        self.patch = params.patch
        self.k = params.k
        self.scorer = Scorer()
        self.features = build_feature_net(params.feature)
        self.hidden = nn.Linear(self.features.out_dim, params.hidden)
        self.classifier = nn.Linear(params.hidden, num_classes)
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def current_sigma(self) -> float:
        """The noise std of the next training step (``sigma_t`` of the module docstring)."""
        decay = self.params.sigma_decay_steps
        if decay is None:
            return self.params.sigma
        return self.params.sigma * max(0.0, 1.0 - int(self.steps) / decay)

    def score_maps(self, images: Sequence[ImageAccess]) -> list[torch.Tensor]:
        """Raw ``(rows, cols)`` scores of each image (before normalisation)."""
        views = views_on(self, images, self.scale)
        for index, view in enumerate(views):
            rows, cols = Scorer.grid(*view.shape[-2:])
            if rows < 1 or cols < 1 or rows * cols < self.k:
                raise UserError(
                    f"Top-K: the view of image {index} of the batch at scale {self.scale} is "
                    f"{view.shape[-2]}x{view.shape[-1]} px, which gives {max(rows, 0)}x{max(cols, 0)} candidate "
                    f"patches, fewer than k = {self.k} (the scorer needs {2 * SCORE_POOL} px for one row). "
                    "Raise the method's `scale`, lower `k` or use larger images."
                )
        return run_grouped(self.scorer, views)

    def forward(
        self,
        images: Sequence[ImageAccess],
        generator: torch.Generator | None = None,
        sampling: str = "sample",
    ) -> ModelOutput:
        """Logits, score entropy and attention; ``generator`` draws the perturbation noise."""
        check_sampling(sampling)
        sigma = self.current_sigma() if self.training and sampling == "sample" else 0.0
        if self.training:
            self.steps += 1
        patches, entropies, attention = [], [], []
        for image, raw in zip(images, self.score_maps(images)):
            flat = raw.reshape(-1)
            probs = torch.softmax(flat, dim=0)
            scores = normalise_scores(flat)
            if sigma > 0:
                noise = ptopk.standard_noise(self.params.n_samples, flat.numel(), flat, generator)
                indicators = ptopk.perturbed_topk(scores, self.k, sigma, noise, self.params.backward)
                read = (indicators.detach() > 0).any(dim=0).nonzero()[:, 0]
                candidates = to_module(image.patches(self._centres(image, raw.shape, read), self.patch), self)
                mixed = torch.einsum("km,mchw->kchw", indicators[:, read], candidates)
                chosen = indicators.detach().argmax(dim=1)
            else:
                chosen = torch.topk(scores.detach(), self.k).indices.sort().values
                mixed = to_module(image.patches(self._centres(image, raw.shape, chosen), self.patch), self)
            patches.append(mixed)
            entropies.append(entropy(probs))
            attention.append(
                Attention(
                    image_size=image.size,
                    stage1=self._grid_map(image, probs.reshape(raw.shape)),
                    sampled=SampledRegions(self._centres(image, raw.shape, chosen), self.patch),
                )
            )
        features = self.features(torch.cat(patches)).reshape(len(images), self.k, -1).mean(dim=1)
        logits = self.classifier(F.silu(self.hidden(features)))
        return ModelOutput(logits, torch.stack(entropies), attention)

    @staticmethod
    def _grid_map(image: ImageAccess, probs: torch.Tensor) -> AttentionMap:
        height, width = image.size
        rows, cols = probs.shape
        return AttentionMap(probs, (0.0, 0.0), (height / rows, width / cols))

    @staticmethod
    def _centres(image: ImageAccess, shape: torch.Size, positions: torch.Tensor) -> torch.Tensor:
        """Full-resolution ``(y, x)`` centres of grid cells (flat indices into ``shape``)."""
        height, width = image.size
        rows, cols = shape
        positions = positions.cpu()
        y = torch.div(positions, cols, rounding_mode="floor").double()
        x = (positions % cols).double()
        return torch.stack([(y + 0.5) * height / rows, (x + 0.5) * width / cols], dim=1)
