"""MRMIL: multi-resolution MIL (Li et al., Computers in Biology and Medicine 2021), a Table 2 baseline.

Two attention MIL stages, low resolution then high, trained end to end with the slide labels only.
Per image:

1. Stage 1, low resolution: the instances are the tissue cells of a grid of ``region`` x ``region``
   px regions (full-resolution px; :func:`zoomin.models.tissue_bags.instance_grid`), each read at
   ``low_scale`` and embedded by a patch CNN, ``chunk`` regions at a time (with gradients when
   training: a region is only ``region * low_scale`` px). A gated attention MIL head (an embedding
   layer and ReLU, gated attention pooling, a linear classifier: :class:`AttentionMILHead`) gives
   the stage-1 slide logits and the attention, the saliency, of every region.
2. Selection: the ``top`` regions of highest stage-1 attention, detached (no gradient passes through
   the choice; the saliency learns from the stage-1 loss below).
3. Stage 2, high resolution: the instances are the ``patch`` x ``patch`` px cells of the selected
   regions (those with tissue when the image knows its tissue; all of a region's cells where none
   has), read at ``high_scale`` and embedded by a second patch CNN; a second gated attention MIL
   head gives the slide's logits. Stage 2 reads at most ``top * (region / patch)^2`` instances,
   however large the slide.
4. Loss: the training loop's cross-entropy of the slide's logits plus :meth:`MRMILNet.auxiliary_loss`,
   ``stage1_weight`` times the cross-entropy of the stage-1 logits. The stage-1 classifier is what
   trains the saliency, as the paper's stage-1 attention MIL does; stage 2 learns on what stage 1
   selects.

Re-implemented from the paper's description: no public code exists. Its networks, magnifications,
tile counts and instance dropout are not reproduced; the patch CNNs are the CPU-sized
:class:`zoomin.models.tissue_bags.PatchEncoder` and the sizes, scales and counts are our choices
(docs/methods.md, MRMIL).

Attention (one stage): the stage-1 attention over the region grid; the ``top`` selected regions are
the sampled regions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from zoomin.image_access import ImageAccess
from zoomin.models.output import ModelOutput
from zoomin.models.params import MRMILParams
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


class AttentionMILHead(nn.Module):
    """``(n, in_dim)`` instance embeddings -> ``(num_classes,)`` bag logits and the ``(n,)`` attention:
    ``h = ReLU(W e)`` (``hidden`` wide), gated attention pooling of ``h``, a linear classifier."""

    def __init__(self, in_dim: int, hidden: int, num_classes: int):
        super().__init__()
        self.fc = nn.Linear(in_dim, hidden)
        self.attention = GatedAttention(hidden, hidden // 2)
        self.classifier = nn.Linear(hidden, num_classes)

    def forward(self, embeddings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled, weights = self.attention(F.relu(self.fc(embeddings)))
        return self.classifier(pooled), weights


def region_cells(
    image: ImageAccess, regions: torch.Tensor, region_cols: int, region: int, patch: int
) -> tuple[tuple[int, int], torch.Tensor]:
    """The ``(rows, cols)`` grid of ``patch`` px cells from the image's corner and the flat indices of
    the cells inside the given regions (flat indices into the grid of ``region`` px regions, which
    ``patch`` divides): per region its cells with tissue when the image knows its tissue, else (or
    where none has tissue) all of its cells inside the image."""
    height, width = image.size
    rows, cols = -(-height // patch), -(-width // patch)
    per = region // patch
    tissue = image.tile_mask(patch)
    tissue = tissue.reshape(-1) if tissue is not None else None
    offsets = torch.arange(per)
    chosen = []
    for index in regions.tolist():
        ys, xs = (index // region_cols) * per + offsets, (index % region_cols) * per + offsets
        ys, xs = ys[ys < rows], xs[xs < cols]  # a region on the border runs past the image
        cells = (ys[:, None] * cols + xs[None, :]).reshape(-1)
        if tissue is not None and tissue[cells].any():
            cells = cells[tissue[cells]]
        chosen.append(cells)
    return (rows, cols), torch.cat(chosen)


class MRMILNet(BagClassifier):
    """Two-stage multi-resolution attention MIL; see the module docstring."""

    def __init__(self, num_classes: int, params: MRMILParams):
        super().__init__()
        self.params = params
        self.low_encoder = PatchEncoder(params.width)
        self.low_head = AttentionMILHead(self.low_encoder.out_dim, params.hidden, num_classes)
        self.high_encoder = PatchEncoder(params.width)
        self.high_head = AttentionMILHead(self.high_encoder.out_dim, params.hidden, num_classes)

    def stage1(self, image: ImageAccess) -> tuple[tuple[int, int], torch.Tensor, torch.Tensor, torch.Tensor]:
        """The region grid, its instances (flat indices), the stage-1 logits and attention."""
        region, scale, chunk = self.params.region, self.params.low_scale, self.params.chunk
        shape, cells = instance_grid(image, region)
        centres = cell_centres(cells, shape[1], region)
        # Chunks bound the pixels read at once (and, without gradients, the activations); in
        # training every region's activations stay for the backward pass, small at low_scale.
        embeddings = torch.cat([
            self.low_encoder(read_instances(image, centres[start : start + chunk], region, scale, self))
            for start in range(0, len(centres), chunk)
        ])
        logits, weights = self.low_head(embeddings)
        return shape, cells, logits, weights

    def classify(self, image: ImageAccess) -> BagResult:
        """Logits of stage 2 on the image's selected regions; the stage-1 logits for
        :meth:`auxiliary_loss`."""
        p = self.params
        shape, cells, low_logits, weights = self.stage1(image)
        top = torch.topk(weights.detach(), min(p.top, len(cells))).indices.cpu()
        grid, high_cells = region_cells(image, cells[top], shape[1], p.region, p.patch)
        instances = read_instances(image, cell_centres(high_cells, grid[1], p.patch), p.patch, p.high_scale, self)
        logits = self.high_head(self.high_encoder(instances))[0]
        return BagResult(logits, bag_attention(image, shape, p.region, cells, weights, top), low_logits)

    def auxiliary_loss(self, output: ModelOutput, labels: torch.Tensor) -> torch.Tensor | None:
        """``stage1_weight`` times the cross-entropy of the stage-1 logits: what trains the saliency."""
        stage1 = torch.stack(output.extras)
        return self.params.stage1_weight * F.cross_entropy(stage1, labels.to(stage1.device))
