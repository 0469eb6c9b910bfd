"""BagNet (Brendel & Bethge, ICLR 2019): class evidence of small local patches, averaged over the image.

The NeedleCamelyon baseline of the paper (as Pawlowski et al., "Needles in Haystacks", use it). A
ResNet-50-style network of bottleneck blocks in which every convolution is 1x1 except the stem's
3x3 and one unpadded 3x3 at the start of the first ``n`` stages, so each output position sees a
``q x q`` window of the input only (BagNet-q: q = 9, 17, 33 for n = 2, 3, 4; total stride 8). A 1x1
convolution turns the last feature map into per-position class logits (the local class evidence),
and the image's logits are their mean over all positions. Because that last layer is linear, the
mean of the per-position logits equals the linear layer of the mean feature, i.e. BagNet's
"average the logits of the local patches" and the reference code's mean pooling then linear are
the same function.

The view is ``image.view(scale)``, by default the full resolution: memory grows with the image,
which is the point of this baseline. Images of a batch are run in groups of equal view size.

Attention (one stage, nothing sampled): the predicted class's evidence per position, centred over
the classes (the position's contribution to that class's margin over the class average),
softmax-normalised over the positions and laid over the image on a grid of ``stride / scale`` px
cells centred on the receptive-field windows. The entropy term is zero: BagNet has no attention
to regularise.

Departures from the reference, and why: docs/methods.md (BagNet).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from zoomin.errors import UserError
from zoomin.image_access import ImageAccess
from zoomin.models.base import Classifier
from zoomin.models.batching import run_grouped, views_on
from zoomin.models.output import Attention, AttentionMap, ModelOutput, check_sampling
from zoomin.models.params import BagNetParams

EXPANSION = 4
STAGE_STRIDES = (2, 2, 2, 1)
THREE_BY_THREE_STAGES = {9: 2, 17: 3, 33: 4}  # BagNet-q: stages that start with a 3x3 convolution


def conv_bn(channels_in: int, channels_out: int, kernel: int = 1, stride: int = 1) -> nn.Sequential:
    """An unpadded convolution and BatchNorm."""
    return nn.Sequential(
        nn.Conv2d(channels_in, channels_out, kernel, stride=stride, padding=0, bias=False),
        nn.BatchNorm2d(channels_out),
    )


class Bottleneck(nn.Module):
    """1x1 -> ``kernel`` x ``kernel`` (unpadded, strided) -> 1x1 with ``4 * planes`` outputs, plus a
    shortcut (a strided 1x1 projection where the shape changes) taken at the centre of each window
    of the middle convolution and cropped to the branch's size."""

    def __init__(self, channels_in: int, planes: int, stride: int, kernel: int):
        super().__init__()
        self.reduce = conv_bn(channels_in, planes)
        self.spatial = conv_bn(planes, planes, kernel, stride)
        self.expand = conv_bn(planes, planes * EXPANSION)
        changes = stride != 1 or channels_in != planes * EXPANSION
        self.project = conv_bn(channels_in, planes * EXPANSION, stride=stride) if changes else None
        self.stride = stride
        self.centre = (kernel - 1) // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.expand(F.relu(self.spatial(F.relu(self.reduce(x)))))
        shortcut = x[:, :, self.centre :, self.centre :]
        if self.project is not None:
            shortcut = self.project(shortcut)
        return F.relu(out + shortcut[:, :, : out.shape[2], : out.shape[3]])


class BagNetFeatures(nn.Module):
    """Stem (1x1, unpadded 3x3) and four stages of bottlenecks; see the module docstring."""

    stride = 8

    def __init__(self, receptive_field: int, width: int, blocks: Sequence[int]):
        super().__init__()
        self.receptive_field = receptive_field
        self.stem = nn.Sequential(
            nn.Conv2d(3, width, 1, bias=False), nn.Conv2d(width, width, 3, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        )
        spatial_stages = THREE_BY_THREE_STAGES[receptive_field]
        layers: list[nn.Module] = []
        channels = width
        for stage, (count, stride) in enumerate(zip(blocks, STAGE_STRIDES)):
            planes = width * 2**stage
            for block in range(count):
                kernel = 3 if block == 0 and stage < spatial_stages else 1
                layers.append(Bottleneck(channels, planes, stride if block == 0 else 1, kernel))
                channels = planes * EXPANSION
        self.stages = nn.Sequential(*layers)
        self.out_dim = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))


class BagNet(Classifier):
    """BagNet-q classifier over ``image.view(scale)``; see the module docstring."""

    def __init__(self, num_classes: int, params: BagNetParams):
        super().__init__()
        self.params = params
        self.scale = params.scale
        self.features = BagNetFeatures(params.receptive_field, params.width, params.stage_blocks())
        self.evidence = nn.Conv2d(self.features.out_dim, num_classes, 1)

    @property
    def receptive_field(self) -> int:
        return self.features.receptive_field

    def evidence_maps(self, views: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Per-position class logits ``(K, h, w)`` of each view."""
        return run_grouped(lambda batch: self.evidence(self.features(batch)), views)

    def forward(
        self,
        images: Sequence[ImageAccess],
        generator: torch.Generator | None = None,
        sampling: str = "sample",
    ) -> ModelOutput:
        """Mean local evidence per image; ``generator`` and ``sampling`` are accepted and ignored."""
        check_sampling(sampling)
        views = views_on(self, images, self.scale)
        self._check_views(views)
        maps = self.evidence_maps(views)
        logits = torch.stack([m.mean(dim=(1, 2)) for m in maps])
        predicted = logits.detach().argmax(1).tolist()
        attention = [
            self._attention(image, view, m, c) for image, view, m, c in zip(images, views, maps, predicted)
        ]
        return ModelOutput(logits, logits.new_zeros(len(images)), attention)

    def _attention(self, image: ImageAccess, view: torch.Tensor, evidence: torch.Tensor, cls: int) -> Attention:
        centred = evidence[cls] - evidence.mean(dim=0)
        probs = torch.softmax(centred.reshape(-1), dim=0).reshape(centred.shape)
        height, width = image.size
        per_px = (height / view.shape[1], width / view.shape[2])  # full-resolution px per view px
        offset = (self.receptive_field - self.features.stride) / 2  # window centre minus half a cell
        stage1 = AttentionMap(
            probs,
            (offset * per_px[0], offset * per_px[1]),
            (self.features.stride * per_px[0], self.features.stride * per_px[1]),
        )
        return Attention(image_size=image.size, stage1=stage1)

    def _check_views(self, views: list[torch.Tensor]) -> None:
        """Views smaller than the receptive field have no complete window; in training a view whose
        evidence map is a single position, alone in its size group, would reach BatchNorm as one
        value per channel. Both are refused with what to change."""
        q = self.receptive_field
        shapes = Counter(tuple(view.shape) for view in views)
        for index, view in enumerate(views):
            height, width = view.shape[-2:]
            if min(height, width) < q:
                problem = f"it needs at least {q} px a side"
            elif self.training and max(height, width) < q + self.features.stride and shapes[tuple(view.shape)] == 1:
                problem = f"to train on it alone it needs one side of at least {q + self.features.stride} px"
            else:
                continue
            raise UserError(
                f"BagNet-{q}: the view of image {index} of the batch at scale {self.scale} is {height}x{width} px; "
                f"{problem}. Raise the method's `scale`, lower `receptive_field` or use larger images."
            )
