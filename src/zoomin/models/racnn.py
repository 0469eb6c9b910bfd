"""RA-CNN (Fu, Zheng & Mei, CVPR 2017, "Look closer to see better"): three scales, each looking
closer at a square the previous one chose.

Scale 1 classifies the whole image's view ``image.view(scale)``. Each scale has its own CNN (the
colon CNN's 8-layer ResNet, ``width`` channels; the reference uses VGG-19). After scales 1 and 2 an
attention proposal network (APN: two fully connected layers on the scale's conv features pooled
to 4x4, then a sigmoid) gives ``(t_y, t_x, t_l)``: a square of side ``(min_side + (1 - min_side)
t_l)`` times its parent's side (the parent of scale 2's square is the image, of scale 3's the
square of scale 2), centred so that it stays inside its parent. The APN's last layer starts at
zero, so every square starts at the parent's centre with 2/3 of its side (in place of the
reference's APN pre-training).

Scales 2 and 3 read their square from the image itself, not from the coarser scale's input: this
is how they "look closer". Each reads the square (plus a margin of at least one read pixel) with
``image.region_view`` at the resolution its ``crop_size x crop_size`` input needs,
``clamp(crop_size / side, scale, 1)``, and resamples it with an affine ``grid_sample`` whose
sampling positions are functions of the square. The read region is chosen from the square without
gradient, but bilinear sampling only needs each sample's neighbouring pixels, which the margin
provides, so the gradient w.r.t. the square is the same as when sampling from the whole image:
the crop is differentiable w.r.t. the APN outputs without a custom backward, and memory holds only
the region read.

Prediction: the mean of the three scales' logits. Training terms of its own
(:meth:`RACNN.auxiliary_loss`): the cross-entropy of each scale, plus ``rank_weight`` times the
pairwise ranking loss ``sum_s max(0, p_t(s) - p_t(s+1) + margin)`` over the true class's softmax
probability, with the coarser scale's probability detached (docs/methods.md says why).

Attention: ``stage1`` is uniform over scale 2's square on a 32x32 grid over the image;
``stage2`` (keyed by the stage-1 cell that holds the square's centre) is uniform over scale 3's
square on a 32x32 grid over scale 2's square; ``sampled`` is scale 3's square. The maps are live
functions of the squares (area coverage), so a mask loss reaches the APNs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from zoomin.image_access import ImageAccess
from zoomin.models.base import Classifier
from zoomin.models.batching import run_grouped, to_module, views_on
from zoomin.models.cnn import SmallResNet
from zoomin.models.output import Attention, AttentionMap, ModelOutput, SampledRegions, check_sampling
from zoomin.models.params import RACNNParams

MAP_SIDE = 32  # cells per side of the attention maps
APN_POOL = 4  # the APN sees the conv features average-pooled to 4x4
APN_HIDDEN = 128


@dataclass
class Square:
    """A square in full-resolution px: top-left corner and side (0-dim tensors, live)."""

    top: torch.Tensor
    left: torch.Tensor
    side: torch.Tensor

    def centre(self) -> tuple[float, float]:
        half = float(self.side.detach()) / 2
        return float(self.top.detach()) + half, float(self.left.detach()) + half


@dataclass
class ScaleLogits:
    """What :meth:`RACNN.auxiliary_loss` needs: each scale's logits ``(B, K)``, coarse to fine."""

    logits: list[torch.Tensor]


class APN(nn.Module):
    """Attention proposal network: conv features ``(B, C, h, w)`` -> ``(t_y, t_x, t_l)`` in (0, 1)."""

    def __init__(self, channels: int):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(channels * APN_POOL * APN_POOL, APN_HIDDEN), nn.Tanh(), nn.Linear(APN_HIDDEN, 3)
        )
        nn.init.zeros_(self.layers[2].weight)
        nn.init.zeros_(self.layers[2].bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.layers(F.adaptive_avg_pool2d(features, APN_POOL).flatten(1)))


class ScaleNet(nn.Module):
    """One scale's CNN; ``forward`` returns the logits and the conv features they were pooled from."""

    def __init__(self, num_classes: int, width: int):
        super().__init__()
        net = SmallResNet(num_classes, width)
        self.body, self.classifier = net.body, net.classifier

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(x)
        return self.classifier(features.mean(dim=(2, 3))), features


def rank_loss(p_coarse: torch.Tensor, p_fine: torch.Tensor, margin: float) -> torch.Tensor:
    """``mean(max(0, p_coarse - p_fine + margin))``; ``p_coarse`` is taken as a constant."""
    return F.relu(p_coarse.detach() - p_fine + margin).mean()


def square_in(parent: Square | tuple[float, float, float, float], t: torch.Tensor, min_side: float) -> Square:
    """The square that ``t = (t_y, t_x, t_l)`` picks inside ``parent`` (a Square, or the image
    as ``(top, left, height, width)``): side ``(min_side + (1 - min_side) t_l)`` times the parent's
    shorter side, corner so that the square stays inside the parent."""
    if isinstance(parent, Square):
        top, left, height, width = parent.top, parent.left, parent.side, parent.side
        shorter = parent.side
    else:
        top, left, height, width = parent
        shorter = min(height, width)
    side = (min_side + (1.0 - min_side) * t[2]) * shorter
    return Square(top + t[0] * (height - side), left + t[1] * (width - side), side)


def read_scale(side: float, crop_size: int, coarsest: float) -> float:
    """Resolution at which a square of ``side`` px is read for a ``crop_size`` input: what the
    input needs, never coarser than the scale-1 view and never finer than full resolution."""
    return min(1.0, max(coarsest, crop_size / max(side, 1e-6)))


def crop_square(image: ImageAccess, square: Square, crop_size: int, coarsest: float, like: nn.Module) -> torch.Tensor:
    """``(C, crop_size, crop_size)``: ``square`` resampled from the image, differentiable w.r.t. it."""
    side = float(square.side.detach())
    scale = read_scale(side, crop_size, coarsest)
    margin = math.ceil(1.0 / scale) + 1  # one read pixel around the square for the bilinear footprint
    top = math.floor(float(square.top.detach())) - margin
    left = math.floor(float(square.left.detach())) - margin
    size = math.ceil(side) + 2 * margin + 1
    region = to_module(image.region_view(top, left, size, scale), like)
    steps = (torch.arange(crop_size, device=region.device, dtype=region.dtype) + 0.5) / crop_size
    # full-resolution sample positions -> [-1, 1] over the read region (align_corners=False)
    ys = 2 * (square.top + steps * square.side - top) / size - 1
    xs = 2 * (square.left + steps * square.side - left) / size - 1
    grid = torch.stack(torch.broadcast_tensors(xs[None, :], ys[:, None]), dim=-1)
    return F.grid_sample(region[None], grid[None], mode="bilinear", padding_mode="zeros", align_corners=False)[0]


def coverage_map(square: Square, origin: tuple[float, float], cell: tuple[float, float], shape: int) -> torch.Tensor:
    """The share of ``square`` in each cell of a ``shape x shape`` grid (sums to 1; live)."""
    device, dtype = square.side.device, square.side.dtype
    steps = torch.arange(shape + 1, device=device, dtype=dtype)

    def overlaps(start: torch.Tensor, first_edge: float, cell_side: float) -> torch.Tensor:
        edges = first_edge + steps * cell_side
        return (torch.minimum(edges[1:], start + square.side) - torch.maximum(edges[:-1], start)).clamp_min(0)

    area = overlaps(square.top, origin[0], cell[0])[:, None] * overlaps(square.left, origin[1], cell[1])[None, :]
    return area / area.sum().clamp_min(torch.finfo(dtype).tiny)


class RACNN(Classifier):
    """See the module docstring."""

    def __init__(self, num_classes: int, params: RACNNParams):
        super().__init__()
        self.params = params
        self.num_classes = num_classes
        self.scale = params.scale
        self.crop_size = params.crop_size
        self.min_side = params.min_side
        self.margin = params.margin
        self.rank_weight = params.rank_weight
        self.scales = nn.ModuleList(ScaleNet(num_classes, params.width) for _ in range(3))
        self.apns = nn.ModuleList(APN(params.width) for _ in range(2))

    def _first_scale(self, views: torch.Tensor) -> torch.Tensor:
        logits, features = self.scales[0](views)
        return torch.cat([logits, self.apns[0](features)], dim=1)

    def forward(
        self,
        images: Sequence[ImageAccess],
        generator: torch.Generator | None = None,
        sampling: str = "sample",
    ) -> ModelOutput:
        """Fused logits, no entropy, the squares as attention; nothing is random (``generator`` unused)."""
        check_sampling(sampling)
        views = views_on(self, images, self.scale)
        first = torch.stack(run_grouped(self._first_scale, views))
        logits = [first[:, : self.num_classes]]
        t = first[:, self.num_classes :]
        squares: list[list[Square]] = []
        for level in (1, 2):
            parents = [(0.0, 0.0, *map(float, image.size)) for image in images] if level == 1 else squares[-1]
            chosen = [square_in(parent, t[i], self.min_side) for i, parent in enumerate(parents)]
            crops = torch.stack(
                [crop_square(image, sq, self.crop_size, self.scale, self) for image, sq in zip(images, chosen)]
            )
            level_logits, features = self.scales[level](crops)
            logits.append(level_logits)
            squares.append(chosen)
            if level == 1:
                t = self.apns[1](features)
        fused = torch.stack(logits).mean(dim=0)
        attention = [
            self._attention(image, second, third) for image, second, third in zip(images, squares[0], squares[1])
        ]
        return ModelOutput(fused, fused.new_zeros(len(images)), attention, extras=ScaleLogits(logits))

    def auxiliary_loss(self, output: ModelOutput, labels: torch.Tensor) -> torch.Tensor | None:
        """Cross-entropy of every scale plus ``rank_weight`` times the ranking loss of scales 1-2 and 2-3."""
        if not isinstance(output.extras, ScaleLogits):
            return None
        labels = labels.to(output.logits.device)
        per_scale = output.extras.logits
        intra = sum(F.cross_entropy(scale_logits, labels) for scale_logits in per_scale)
        truth = [torch.softmax(s, dim=1).gather(1, labels[:, None])[:, 0] for s in per_scale]
        ranking = sum(rank_loss(coarse, fine, self.margin) for coarse, fine in zip(truth, truth[1:]))
        return intra + self.rank_weight * ranking

    @staticmethod
    def _attention(image: ImageAccess, second: Square, third: Square) -> Attention:
        height, width = image.size
        cell = (height / MAP_SIDE, width / MAP_SIDE)
        stage1 = AttentionMap(coverage_map(second, (0.0, 0.0), cell, MAP_SIDE), (0.0, 0.0), cell)
        origin = (float(second.top.detach()), float(second.left.detach()))
        inner = (float(second.side.detach()) / MAP_SIDE,) * 2
        stage2 = AttentionMap(coverage_map(third, origin, inner, MAP_SIDE), origin, inner)
        cy, cx = second.centre()
        key = min(int(cy // cell[0]), MAP_SIDE - 1) * MAP_SIDE + min(int(cx // cell[1]), MAP_SIDE - 1)
        return Attention(
            image_size=image.size,
            stage1=stage1,
            stage2={key: stage2},
            sampled=SampledRegions(
                torch.tensor([third.centre()], dtype=torch.float64), max(1, round(float(third.side.detach())))
            ),
        )
