"""CNN baselines that classify a whole view of the image: a small ResNet and EfficientNet-B0.

Both read ``image.view(scale)`` (``scale = 1.0`` is full resolution, which is the point of the
baseline: memory grows with the image). Images of different sizes are run in groups of equal view
size; global average pooling makes any size work. They have no attention: ``entropy`` is zero and
``attention`` is empty.

The small ResNet is the colon baseline "ResNet with 8 conv layers, 32 channels": a strided 3x3
stem, three basic residual blocks of two 3x3 convolutions (strides 1, 2, 2; the strided shortcut is
parameter-free average pooling), a final strided 3x3 convolution, global average pool, linear.
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
from zoomin.models.output import ModelOutput, check_sampling
from zoomin.models.params import ViewCNNParams


def conv_bn(channels_in: int, channels_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels_in, channels_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(channels_out),
    )


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with a residual connection (average-pooled when strided)."""

    def __init__(self, channels: int, stride: int):
        super().__init__()
        self.first = conv_bn(channels, channels, stride)
        self.second = conv_bn(channels, channels)
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        if self.stride > 1:
            shortcut = F.avg_pool2d(x, self.stride, ceil_mode=True)
        return F.relu(self.second(F.relu(self.first(x))) + shortcut)


class SmallResNet(nn.Module):
    """8 convolutional layers of 32 channels, global average pool, linear."""

    def __init__(self, num_classes: int, channels: int = 32):
        super().__init__()
        self.body = nn.Sequential(
            conv_bn(3, channels, stride=2),
            nn.ReLU(),
            BasicBlock(channels, 1),
            BasicBlock(channels, 2),
            BasicBlock(channels, 2),
            conv_bn(channels, channels, stride=2),
            nn.ReLU(),
        )
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.body(x).mean(dim=(2, 3)))


class ViewClassifier(Classifier):
    """Runs a CNN ``backbone`` (images -> logits) on ``image.view(scale)`` of each image.

    ``downsampling`` is the backbone's total stride. In training, a view with neither side larger
    than it ends as a 1x1 feature map, and when no other view of the batch has its size (equal
    sizes run as one group) BatchNorm cannot normalise a single value per channel: such a view is
    refused with an error that says what to change, instead of PyTorch's.
    """

    def __init__(self, backbone: nn.Module, scale: float = 1.0, downsampling: int = 1):
        super().__init__()
        self.backbone = backbone
        self.scale = float(scale)
        self.downsampling = int(downsampling)

    def forward(
        self,
        images: Sequence[ImageAccess],
        generator: torch.Generator | None = None,
        sampling: str = "sample",
    ) -> ModelOutput:
        """Logits of the views; ``generator`` and ``sampling`` are accepted and ignored."""
        check_sampling(sampling)
        views = views_on(self, images, self.scale)
        if self.training:
            self._check_trainable(views)
        logits = torch.stack(run_grouped(self.backbone, views))
        return ModelOutput(logits, logits.new_zeros(len(images)))

    def _check_trainable(self, views: list[torch.Tensor]) -> None:
        shapes = Counter(tuple(view.shape) for view in views)
        for index, view in enumerate(views):
            height, width = view.shape[-2:]
            if max(height, width) <= self.downsampling and shapes[tuple(view.shape)] == 1:
                raise UserError(
                    f"{type(self.backbone).__name__}: the view of image {index} of the batch at scale {self.scale} is "
                    f"{height}x{width} px, too small to train on: the network downsamples by "
                    f"{self.downsampling}, so at least one side must exceed {self.downsampling} px. "
                    "Raise the method's `scale` or use larger images."
                )


def small_resnet(num_classes: int, params: ViewCNNParams) -> ViewClassifier:
    """The colon baseline CNN on views at ``params.scale``."""
    return ViewClassifier(SmallResNet(num_classes), params.scale, downsampling=16)


def efficientnet(num_classes: int, params: ViewCNNParams) -> ViewClassifier:
    """torchvision's EfficientNet-B0 (random init) on views at ``params.scale``."""
    # imported here: torchvision takes ~3 s to import, which every other job would pay
    from torchvision.models import efficientnet_b0

    return ViewClassifier(efficientnet_b0(weights=None, num_classes=num_classes), params.scale, downsampling=32)
