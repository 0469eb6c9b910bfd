"""Feature networks ``f`` that map a batch of P x P sub-tiles to feature vectors.

* ``lenet`` -- LeNet-like (docs/method.md §11.1): input standardised (:mod:`.standardise`), conv5x5
  3->36, ReLU, max-pool 2, conv5x5 36->48, ReLU, max-pool 2, global average pool, L2-normalise -> 48-d.
  Convolutions are padded ("same") and pooling rounds up, so sub-tiles of a few pixels still work.
* ``lenet_unnormalised`` -- the same without the final L2 normalisation. The average of unit
  vectors that the estimators form moves very little when one of the N sampled sub-tiles changes,
  so the linear classifier needs large weights, which Adam grows slowly; on a CPU budget only this
  variant learned the stand-ins (docs/method.md §12), and the CPU default uses it for every LeNet
  model alike.
* ``resnet16`` -- the paper's ResNet16 (Appendix K, Table 6): conv3x3 3->32, four pre-activation
  residual blocks of 32 channels (strides 1, 2, 2, 2; 1x1 projection shortcut where strided),
  BatchNorm + ReLU, global average pool -> 32-d, not normalised (the table ends at the pool).
  In training mode BatchNorm uses the statistics of the sampled sub-tiles of the batch, so ``f``
  then depends on the batch; the unbiasedness of the estimators holds exactly in eval mode.
* ``ats_traffic`` -- ATS's traffic-sign feature net, which the Top-K reference code uses too
  (``ATSFeatureNetwork``): ResNet16 without its stride-1 block, i.e. conv3x3 3->32 and three
  pre-activation blocks of stride 2 -> 32-d.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from zoomin.models.standardise import Standardise


class LeNetFeatures(nn.Module):
    """LeNet-like feature net (``out_dim`` = 48), output L2-normalised unless ``normalise=False``."""

    out_dim = 48

    def __init__(self, normalise: bool = True) -> None:
        super().__init__()
        self.normalise = normalise
        self.body = nn.Sequential(  # ReLUs in place: the convolutions' outputs are not needed again
            Standardise(),
            nn.Conv2d(3, 36, 5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2, ceil_mode=True),
            nn.Conv2d(36, 48, 5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2, ceil_mode=True),
        )

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        pooled = self.body(patches).mean(dim=(2, 3))
        return F.normalize(pooled, dim=1) if self.normalise else pooled


class PreActBlock(nn.Module):
    """Pre-activation residual block: BN-ReLU-conv3x3-BN-ReLU-conv3x3 plus shortcut."""

    def __init__(self, channels: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv1 = nn.Conv2d(channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.shortcut = (
            nn.Conv2d(channels, channels, 1, stride=stride, bias=False) if stride > 1 else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.bn1(x))
        out = self.conv1(pre)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + self.shortcut(pre if isinstance(self.shortcut, nn.Conv2d) else x)


class ResNet16Features(nn.Module):
    """ResNet16 feature net of the paper (``out_dim`` = 32)."""

    out_dim = 32

    def __init__(self, channels: int = 32, strides: tuple[int, ...] = (1, 2, 2, 2)) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, channels, 3, padding=1)
        self.blocks = nn.Sequential(*(PreActBlock(channels, stride) for stride in strides))
        self.head = nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU())
        self.out_dim = channels

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(patches))).mean(dim=(2, 3))


FEATURE_NETS = {
    "lenet": LeNetFeatures,
    "lenet_unnormalised": lambda: LeNetFeatures(normalise=False),
    "resnet16": ResNet16Features,
    "ats_traffic": lambda: ResNet16Features(strides=(2, 2, 2)),
}


def build_feature_net(name: str) -> nn.Module:
    """A fresh feature network by name (a key of ``FEATURE_NETS``); it has an ``out_dim``."""
    if name not in FEATURE_NETS:
        raise ValueError(f"feature net must be one of {sorted(FEATURE_NETS)}, got {name!r}")
    return FEATURE_NETS[name]()
