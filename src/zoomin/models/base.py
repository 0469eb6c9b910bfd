"""The interface every model implements, and what Zoom-In and ATS share on top of it.

Every model is called as ``model(images, generator=None, sampling="sample")`` on a list of
:class:`zoomin.image_access.ImageAccess` and returns a :class:`ModelOutput`. Three optional hooks:
``contrastive_logits`` (models whose registry record says ``contrastive``),
``auxiliary_loss`` (a model's own training terms, e.g. a ranking loss, added to the total loss) and
``clear_caches`` (models that keep something between calls: CLAM's frozen embeddings).

:class:`AttentionSamplingClassifier` is what Zoom-In and ATS share: a representation ``Psi_hat``
from attention sampling (``represent``), then the linear classifier ``g``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from zoomin.image_access import ImageAccess
from zoomin.models.output import ModelOutput, Representation


class Classifier(nn.Module):
    """Base class of every model type."""

    def forward(
        self,
        images: Sequence[ImageAccess],
        generator: torch.Generator | None = None,
        sampling: str = "sample",
    ) -> ModelOutput:
        raise NotImplementedError

    def contrastive_logits(
        self, images: Sequence[ImageAccess], generator: torch.Generator | None = None
    ) -> torch.Tensor | None:
        """Logits of the images represented by their low-attention regions; ``None``: no branch."""
        return None

    def auxiliary_loss(self, output: ModelOutput, labels: torch.Tensor) -> torch.Tensor | None:
        """The model's own training terms for a batch (``None``: it has none)."""
        return None

    def clear_caches(self) -> None:
        """Forget what the model keeps between calls, so the next pass starts from the pixels (the
        meters call it before each measured pass); most models keep nothing."""


class AttentionSamplingClassifier(Classifier):
    classifier: nn.Linear

    def represent(
        self,
        images: Sequence[ImageAccess],
        generator: torch.Generator | None = None,
        sampling: str = "sample",
        contrast: bool = False,
    ) -> Representation:
        raise NotImplementedError

    def forward(
        self,
        images: Sequence[ImageAccess],
        generator: torch.Generator | None = None,
        sampling: str = "sample",
    ) -> ModelOutput:
        """Logits, entropy term and attention for a batch. ``generator=None`` uses torch's default RNG."""
        rep = self.represent(images, generator, sampling)
        return ModelOutput(self.classifier(rep.features), rep.entropy, rep.attention)

    def contrastive_logits(
        self, images: Sequence[ImageAccess], generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``g`` of the representation sampled from the complement attention, ``normalise(1 - p)``."""
        return self.classifier(self.represent(images, generator, "sample", contrast=True).features)
