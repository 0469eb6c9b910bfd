"""Fixed input standardisation for the networks that have no normalisation layer of their own.

Images reach the models as floats in [0, 1]. The LeNet-like feature net and the 3-layer attention
nets start with a plain convolution, so their first activations are dominated by the mean
brightness, and tiny-contrast detail (chromatin texture, sign glyphs) moves them very little: the
models then sit on a long plateau before they learn anything (docs/measurements.md has the step
counts). Centring and scaling the input, ``(x - 0.5) / 0.25``, removes it. ResNet16 and the CNN
baselines use BatchNorm and do not need it.
"""

from __future__ import annotations

import torch
from torch import nn

PIXEL_CENTRE = 0.5
PIXEL_SCALE = 0.25


class Standardise(nn.Module):
    """``(x - 0.5) / 0.25``: pixels in [0, 1] to about [-2, 2]; no parameters."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - PIXEL_CENTRE).div_(PIXEL_SCALE)  # one new tensor, not two
