"""CLAM-SB (Lu et al., Nature Biomedical Engineering 2021), a Table 2 baseline.

A slide is a bag of instances (:mod:`.bags`, as for MIL) embedded by a *frozen* patch encoder; only
the attention MIL on top of the embeddings is trained:

1. ``h_i = ReLU(W1 e_i)`` for each instance embedding ``e_i``;
2. gated attention ``a_i = softmax_i(w . (tanh(V h_i) * sigmoid(U h_i)))`` and the slide's
   representation ``sum_i a_i h_i`` (:class:`zoomin.models.tissue_bags.GatedAttention`), classified by a
   linear layer (the bag-level prediction);
3. instance-level clustering (training only, :meth:`CLAMNet.auxiliary_loss`): the ``k_sample``
   instances with the highest attention are pseudo-labelled "in the slide's class" and the
   ``k_sample`` lowest "not", and the slide class's instance classifier is trained on them by
   cross-entropy (CLAM-SB on a task without subtypes: only the true class's classifier). Its
   weight is ``(1 - bag_weight) / bag_weight`` relative to the slide's cross-entropy, CLAM's
   ``bag_weight`` mixture up to a constant factor.

Because the encoder is frozen, a slide's embeddings never change: as CLAM extracts features once
before training, the model keeps each image's embeddings (keyed by its file, up to
``EMBEDDING_BUDGET_BYTES``) and reuses them in later epochs and validations. The meters clear them
before every measured pass (:meth:`CLAMNet.clear_caches`), so memory and time per slide are those
of the whole pass from the pixels. The embedded default's encoder is
:class:`zoomin.models.tissue_bags.PatchEncoder` at its seeded random initialisation, frozen: CLAM's is an
ImageNet ResNet-50, which cannot be downloaded here (docs/methods.md, CLAM-SB).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from zoomin.image_access import ImageAccess
from zoomin.models.output import ModelOutput
from zoomin.models.params import CLAMParams
from zoomin.models.tissue_bags import (
    BagClassifier,
    BagResult,
    GatedAttention,
    PatchEncoder,
    bag_attention,
    cell_centres,
    instance_grid,
    read_instances,
)

# Instance embeddings kept across calls at most (float32): 2 GiB holds ~1,000 slides of the embedded
# default's stand-in (1,900 instances of 32 values each) or ~100 of a real Camelyon16 slide's ~40,000.
EMBEDDING_BUDGET_BYTES = 2 * 1024**3


def image_key(image: ImageAccess) -> str | None:
    """What identifies an image across epochs: its slide or image file (None: nothing does)."""
    return None if image.source is None else str(image.source)


class CLAMNet(BagClassifier):
    """CLAM-SB on frozen instance embeddings; see the module docstring."""

    def __init__(self, num_classes: int, params: CLAMParams):
        super().__init__()
        self.params = params
        self.encoder = PatchEncoder(params.width).requires_grad_(False)
        hidden = params.hidden
        self.fc = nn.Linear(self.encoder.out_dim, hidden)
        self.attention = GatedAttention(hidden, hidden // 2)
        self.classifier = nn.Linear(hidden, num_classes)
        self.instance_classifiers = nn.ModuleList(nn.Linear(hidden, 2) for _ in range(num_classes))
        self._embeddings: dict[str, torch.Tensor] = {}
        self._kept_bytes = 0

    def embeddings(self, image: ImageAccess, centres: torch.Tensor) -> torch.Tensor:
        """The frozen encoder's embedding of every instance (kept per image, see the module docstring)."""
        key = image_key(image)
        if key in self._embeddings:
            return self._embeddings[key]
        with torch.no_grad():
            chunks = [
                self.encoder(read_instances(image, centres[start : start + self.params.chunk],
                                            self.params.patch, self.params.scale, self))
                for start in range(0, len(centres), self.params.chunk)
            ]
        embedded = torch.cat(chunks)
        size = embedded.numel() * embedded.element_size()
        if key is not None and self._kept_bytes + size <= EMBEDDING_BUDGET_BYTES:
            self._embeddings[key] = embedded
            self._kept_bytes += size
        return embedded

    def clear_caches(self) -> None:
        self._embeddings.clear()
        self._kept_bytes = 0

    def classify(self, image: ImageAccess) -> BagResult:
        """Slide logits from gated attention pooling; the instance features and weights for
        :meth:`auxiliary_loss`."""
        patch = self.params.patch
        shape, cells = instance_grid(image, patch)
        hidden = F.relu(self.fc(self.embeddings(image, cell_centres(cells, shape[1], patch))))
        pooled, weights = self.attention(hidden)
        top = torch.topk(weights.detach(), min(self.params.k_sample, len(cells))).indices
        return BagResult(
            self.classifier(pooled), bag_attention(image, shape, patch, cells, weights, top), (hidden, weights)
        )

    def auxiliary_loss(self, output: ModelOutput, labels: torch.Tensor) -> torch.Tensor | None:
        """The instance-level clustering loss of the batch, weighted against the slide loss."""
        losses = []
        for (hidden, weights), label in zip(output.extras, labels.tolist()):
            k = min(self.params.k_sample, len(weights) // 2)
            if k < 1:
                continue
            order = torch.argsort(weights.detach(), descending=True)
            chosen = torch.cat([order[:k], order[-k:]])
            targets = torch.cat([torch.ones(k), torch.zeros(k)]).long().to(hidden.device)
            losses.append(F.cross_entropy(self.instance_classifiers[label](hidden[chosen]), targets))
        if not losses:
            return None
        bag_weight = self.params.bag_weight
        return (1.0 - bag_weight) / bag_weight * torch.stack(losses).mean()
