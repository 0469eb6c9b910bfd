"""The one-stage baseline ATS (attention sampling, Katharopoulos & Fleuret 2019).

One view ``image.view(scale)``; the attention net runs over all of it and a softmax over all its
``h x w`` positions gives ``p``. ``N`` positions are drawn, with replacement (multinomial; the
with-replacement estimator) or, by default, without (Gumbel-top-k on ``log p``; the ATS-style
without-replacement estimator). Position ``(y, x)`` is the ``P x P`` full-resolution patch centred
on ``((y + 0.5) * H/h, (x + 0.5) * W/w)``. ``logits = g(estimate of sum_j p_j f(patch_j))``.

``sampling="topk"`` takes the ``N`` highest-attention positions, weighted with the
without-replacement estimator (whatever ``replace`` is). ``contrastive_logits`` samples from
``normalise(1 - p)`` instead of ``p``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from zoomin import estimators
from zoomin import sampling as draws
from zoomin.image_access import ImageAccess
from zoomin.models.attention import AttentionNet
from zoomin.models.base import AttentionSamplingClassifier
from zoomin.models.batching import run_grouped, to_module, views_on
from zoomin.models.distributions import complement, entropy
from zoomin.models.features import build_feature_net
from zoomin.models.output import Attention, AttentionMap, Representation, SampledRegions, check_sampling
from zoomin.models.params import ATSParams


class ATSNet(AttentionSamplingClassifier):
    """Attention-sampling classifier over one view; see the module docstring."""

    def __init__(self, num_classes: int, params: ATSParams | None = None, feature_net: nn.Module | None = None):
        super().__init__()
        params = params if params is not None else ATSParams()
        self.params = params
        self.scale = params.scale
        self.patch = params.patch
        self.n = params.n
        self.replace = params.replace
        self.attention = AttentionNet(params.attention_activation)
        self.features = feature_net if feature_net is not None else build_feature_net(params.feature)
        self.classifier = nn.Linear(self.features.out_dim, num_classes)

    def represent(
        self,
        images: Sequence[ImageAccess],
        generator: torch.Generator | None = None,
        sampling: str = "sample",
        contrast: bool = False,
    ) -> Representation:
        """The estimate of ``sum_j p_j f(patch_j)`` per image (``(B, D)``), entropy and attention."""
        check_sampling(sampling)
        maps = self.attention_logits(images)
        probs = [torch.softmax(m.reshape(-1), dim=0) for m in maps]
        chosen = [complement(p) if contrast else p for p in probs]
        drawn = [self._draw(q, sampling, generator) for q in chosen]
        centres = [self._centres(image, m.shape, idx) for image, m, idx in zip(images, maps, drawn)]
        patches = torch.cat([image.patches(c, self.patch) for image, c in zip(images, centres)])
        feats = torch.split(self.features(to_module(patches, self)), [len(c) for c in centres])
        with_replacement = self.replace and sampling == "sample"
        estimate = (
            estimators.expectation_with_replacement
            if with_replacement
            else estimators.expectation_without_replacement
        )
        psi = torch.stack([estimate(q, idx, f) for q, idx, f in zip(chosen, drawn, feats)])
        entropies = torch.stack([entropy(p) for p in probs])
        attention = [
            Attention(
                image_size=image.size,
                stage1=self._view_map(image, p.reshape(m.shape)),
                sampled=SampledRegions(c, self.patch),
            )
            for image, p, m, c in zip(images, probs, maps, centres)
        ]
        return Representation(psi, entropies, attention)

    def exact_representation(self, image: ImageAccess) -> torch.Tensor:
        """The exact ``sum_j p_j f(patch_j)`` over every position of the view (small images)."""
        logits = self.attention_logits([image])[0]
        p = torch.softmax(logits.reshape(-1), dim=0)
        everywhere = torch.arange(p.numel(), device=p.device)
        centres = self._centres(image, logits.shape, everywhere)
        feats = self.features(to_module(image.patches(centres, self.patch), self))
        return p @ feats

    @torch.no_grad()
    def attention_maps(self, image: ImageAccess) -> Attention:
        """The attention over the view, detached on the CPU; nothing is sampled."""
        logits = self.attention_logits([image])[0]
        p = torch.softmax(logits.reshape(-1), dim=0).reshape(logits.shape)
        return Attention(image_size=image.size, stage1=self._view_map(image, p)).detached()

    @staticmethod
    def _view_map(image: ImageAccess, probs: torch.Tensor) -> AttentionMap:
        """Attention over the view's positions as a map over the whole image."""
        height, width = image.size
        rows, cols = probs.shape
        return AttentionMap(probs, (0.0, 0.0), (height / rows, width / cols))

    def attention_logits(self, images: Sequence[ImageAccess]) -> list[torch.Tensor]:
        """``(h, w)`` attention logits over each image's view."""
        return run_grouped(self.attention, views_on(self, images, self.scale))

    def _draw(
        self, q: torch.Tensor, sampling: str, generator: torch.Generator | None
    ) -> torch.Tensor:
        if sampling == "topk":
            return draws.top_k(q, self.n)
        if self.replace:
            return draws.sample_with_replacement(q, self.n, generator)
        k = min(self.n, int((q > 0).sum()))
        return draws.gumbel_top_k(torch.log(q), k, generator)

    @staticmethod
    def _centres(image: ImageAccess, shape: torch.Size, positions: torch.Tensor) -> torch.Tensor:
        """Full-resolution ``(y, x)`` centres of view positions (flat indices into ``shape``)."""
        height, width = image.size
        rows, cols = shape
        y = torch.div(positions, cols, rounding_mode="floor").double()
        x = (positions % cols).double()
        return torch.stack([(y + 0.5) * height / rows, (x + 0.5) * width / cols], dim=1).cpu()
