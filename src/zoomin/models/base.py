"""What Zoom-In and ATS share: a representation ``Psi_hat`` from attention sampling, then ``g``.

Subclasses implement ``represent(images, generator, sampling, contrast=False)`` and own a
``classifier`` (the linear ``g``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from zoomin.image_access import ImageAccess
from zoomin.models.output import ModelOutput, Representation


class AttentionSamplingClassifier(nn.Module):
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
        """Logits, entropy term and details for a batch. ``generator=None`` uses torch's default RNG."""
        rep = self.represent(images, generator, sampling)
        return ModelOutput(self.classifier(rep.features), rep.entropy, rep.details, rep.attention)

    def contrastive_logits(
        self, images: Sequence[ImageAccess], generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``g`` of the representation sampled from the complement attention, ``normalise(1 - p)``."""
        return self.classifier(self.represent(images, generator, "sample", contrast=True).features)
