"""MIL: top-instance multiple-instance learning (Campanella et al., Nature Medicine 2019), a Table 2 baseline.

A slide is a bag of instances (:mod:`.bags`): the ``patch`` x ``patch`` px cells of a grid that hold
tissue, read at ``scale`` (1: full resolution, the default). Per image:

1. Inference over the whole bag, without gradients, in chunks of ``chunk`` instances: the patch
   CNN's probability that the instance is not of the reference class (class 0; for two classes the
   tumour probability).
2. The instance with the largest probability is run again with gradients; its logits are the
   slide's logits. Training therefore minimises the cross-entropy of the top instance under the
   slide label, Campanella et al.'s k = 1, and prediction is the top instance's class (their
   max-pooling rule; the RNN aggregation over the top instances is not built).

The two passes see the same weights (the network has no batch statistics or dropout), so the
logits of step 2 are those step 1 ranked. Every training step reads every tissue instance of its
slides: that is the method's cost, and why it gets few epochs on a CPU.

The patch CNN is CPU-sized, :class:`zoomin.models.tissue_bags.PatchEncoder` and a linear layer;
Campanella et al. used an ImageNet-pretrained ResNet-34 (docs/methods.md, MIL).

Attention (one stage): the instance probabilities of step 1 normalised over the bag, on the
instance grid, and the top instance as the sampled region.
"""

from __future__ import annotations

import torch
from torch import nn

from zoomin.image_access import ImageAccess
from zoomin.models.params import MILParams
from zoomin.models.tissue_bags import (
    BagClassifier,
    BagResult,
    PatchEncoder,
    bag_attention,
    cell_centres,
    instance_grid,
    read_instances,
)


class MILNet(BagClassifier):
    """Top-instance MIL; see the module docstring."""

    def __init__(self, num_classes: int, params: MILParams):
        super().__init__()
        self.params = params
        encoder = PatchEncoder(params.width)
        self.net = nn.Sequential(encoder, nn.Linear(encoder.out_dim, num_classes))

    def instances(self, image: ImageAccess, centres: torch.Tensor) -> torch.Tensor:
        return read_instances(image, centres, self.params.patch, self.params.scale, self)

    def instance_scores(self, image: ImageAccess, centres: torch.Tensor) -> torch.Tensor:
        """Probability of a non-reference class of every instance, chunk by chunk, without gradients."""
        scores = []
        with torch.no_grad():
            for start in range(0, len(centres), self.params.chunk):
                patches = self.instances(image, centres[start : start + self.params.chunk])
                scores.append(1.0 - torch.softmax(self.net(patches), dim=1)[:, 0])
        return torch.cat(scores).cpu()

    def classify(self, image: ImageAccess) -> BagResult:
        """Logits of the image's top instance."""
        patch = self.params.patch
        shape, cells = instance_grid(image, patch)
        centres = cell_centres(cells, shape[1], patch)
        scores = self.instance_scores(image, centres)
        top = int(scores.argmax())
        logits = self.net(self.instances(image, centres[top : top + 1]))[0]
        return BagResult(logits, bag_attention(image, shape, patch, cells, scores, torch.tensor([top])))
