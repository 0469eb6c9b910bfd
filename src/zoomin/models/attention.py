"""The attention networks of both Zoom-In stages and of ATS (paper Appendix K).

Input standardised (:mod:`.standardise`), then three 3x3 convolutions, 3 -> 8 -> 8 -> 1 channels,
padding 1, with ``tanh`` (default) or ``relu`` after the first two. The last convolution is linear
by default: its output is the attention logit map, and the softmax is taken by the model (over
tiles after pooling in stage 1, over the positions of one tile in stage 2, over the whole view for
ATS). Appendix K puts a ``tanh`` after the last
stage-1 convolution too; that bounds every tile logit to [-1, 1], so no tile can get more than
e^2 times the attention of another, which flattens attention over the thousands of tiles of a
slide. ``final_activation=True`` restores the appendix's variant.
"""

from __future__ import annotations

import torch
from torch import nn

from zoomin.models.standardise import Standardise

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}


class AttentionNet(nn.Module):
    """Maps a ``(B, 3, h, w)`` view to ``(B, h, w)`` attention logits."""

    def __init__(self, activation: str = "tanh", hidden: int = 8, final_activation: bool = False):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"attention activation must be one of {sorted(ACTIVATIONS)}")
        act = ACTIVATIONS[activation]
        layers: list[nn.Module] = [
            Standardise(),
            nn.Conv2d(3, hidden, 3, padding=1),
            act(),
            nn.Conv2d(hidden, hidden, 3, padding=1),
            act(),
            nn.Conv2d(hidden, 1, 3, padding=1),
        ]
        if final_activation:
            layers.append(act())
        self.layers = nn.Sequential(*layers)

    def forward(self, views: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``mask`` (``(B, 1, h, w)``, 1 on each view's own pixels, 0 on its padding): the input of
        every convolution is zeroed outside it, so each view's logits are those it would get alone
        (a convolution pads with zeros at the view's edge), whatever the batch is padded to."""
        if mask is None:
            return self.layers(views)[:, 0]
        x = views
        for layer in self.layers:
            x = layer(x * mask if isinstance(layer, nn.Conv2d) else x)
        return x[:, 0]
