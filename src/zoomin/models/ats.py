"""The one-stage baseline ATS (attention sampling, Katharopoulos & Fleuret 2019), batched over images.

One view ``image.view(scale)`` per image, zero-padded to the batch's largest; the attention net runs
once over the batch (masked so that each view's logits are those it gets alone) and a softmax over
each image's ``h x w`` positions gives ``p``. ``N`` positions per image are drawn, with replacement
(multinomial; the with-replacement estimator) or, by default, without (Gumbel-top-k on ``log p``;
the ATS-style without-replacement estimator), all images in one call
(:mod:`zoomin.models.stages`). Position ``(y, x)`` is the ``P x P`` full-resolution patch centred
on ``((y + 0.5) * H/h, (x + 0.5) * W/w)``. ``f`` runs on all patches of the batch in one call, and
``logits = g(estimate of sum_j p_j f(patch_j))``; with ``ATSParams.control_variate`` the gradient
of the score part gets a baseline (docs/method.md §6.1: the other draws with replacement, only the
earlier draws without).

``sampling="topk"`` takes the ``N`` highest-attention positions, weighted with the
without-replacement estimator (whatever ``replace`` is). ``contrastive_logits`` samples from
``normalise(1 - p)`` instead of ``p``. The only loops over images read pixels
(:mod:`zoomin.models.batching`); each image's attention is sliced from the batch when read.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from zoomin.image_access import ImageAccess, view_shape
from zoomin.models import stages
from zoomin.models.attention import AttentionNet
from zoomin.models.base import AttentionSamplingClassifier
from zoomin.models.batching import extent_mask, read_patches, read_views
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
        self.control_variate = params.control_variate
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
        count = len(images)
        shapes = [view_shape(image.size, self.scale) for image in images]
        shape = (max(h for h, _ in shapes), max(w for _, w in shapes))
        logits = self._batch_logits(images, shapes, shape)
        probs = torch.softmax(logits.reshape(count, -1), dim=1)
        chosen = complement(probs, torch.isfinite(logits).reshape(count, -1)) if contrast else probs
        if sampling == "sample" and self.replace:
            drawn = stages.draw_iid(chosen, self.n, generator)
        else:
            wanted = torch.full((count,), self.n, device=probs.device)
            drawn = stages.draw_positions(chosen, wanted, sampling, generator)

        valid = drawn.valid.cpu().numpy()
        owners, rank = np.nonzero(valid)
        centres = view_centre_array(
            drawn.positions.cpu().numpy()[owners, rank], shape[1], np.array(shapes)[owners],
            np.array([image.size for image in images])[owners],
        )
        features = self.features(read_patches(images, owners, centres, self.patch, self))
        features = stages.scatter_draws(features, drawn.valid)
        groups = torch.arange(count, device=features.device)
        psi = stages.position_estimate(
            drawn, features, groups, count, self.control_variate and torch.is_grad_enabled()
        )

        def attention(i: int) -> Attention:
            height, width = shapes[i]
            return Attention(
                image_size=images[i].size,
                stage1=self._view_map(images[i], probs[i].reshape(shape)[:height, :width]),
                sampled=SampledRegions(torch.from_numpy(centres[owners == i]), self.patch),
            )

        return Representation(psi, entropy(probs), LazyAttention(count, attention))

    def exact_representation(self, image: ImageAccess) -> torch.Tensor:
        """The exact ``sum_j p_j f(patch_j)`` over every position of the view (small images)."""
        logits = self.attention_logits([image])[0]
        p = torch.softmax(logits.reshape(-1), dim=0)
        positions = np.arange(p.numel())
        centres = view_centre_array(positions, logits.shape[1], np.array([logits.shape]), np.array([image.size]))
        feats = self.features(read_patches([image], np.zeros(len(positions), dtype=int), centres, self.patch, self))
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
        shapes = [view_shape(image.size, self.scale) for image in images]
        shape = (max(h for h, _ in shapes), max(w for _, w in shapes))
        logits = self._batch_logits(images, shapes, shape)
        return [logits[i, :height, :width] for i, (height, width) in enumerate(shapes)]

    def _batch_logits(
        self, images: Sequence[ImageAccess], shapes: list[tuple[int, int]], shape: tuple[int, int]
    ) -> torch.Tensor:
        """``(B, *shape)`` attention logits of the batch's views, ``-inf`` on the padding."""
        views = read_views(images, self.scale, shape, self)
        mask = extent_mask(shapes, shape, views.device)
        logits = self.attention(views, mask)
        return logits if mask is None else logits.masked_fill(mask[:, 0] == 0, float("-inf"))


def view_centre_array(positions: np.ndarray, width: int, views: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """``(n, 2)`` full-resolution ``(y, x)`` centres of view positions (flat indices into rows of
    ``width``), each in a view of ``views[k]`` (h, w) of an image of ``sizes[k]`` (H, W) px."""
    y, x = np.divmod(np.asarray(positions, dtype=np.int64), width)
    views = np.asarray(views, dtype=np.float64).reshape(-1, 2)
    sizes = np.asarray(sizes, dtype=np.float64).reshape(-1, 2)
    return np.stack([(y + 0.5) * sizes[:, 0] / views[:, 0], (x + 0.5) * sizes[:, 1] / views[:, 1]], axis=1)
