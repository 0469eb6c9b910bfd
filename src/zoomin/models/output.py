"""What every model returns: logits, the attention entropy term, and per-image details.

``details`` is for plotting and logging (detached, on the CPU). ``attention`` holds the same
attention maps as live tensors on the model's device, for losses that supervise them
(pixel-annotation MSE); it is empty for CNNs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Representation:
    """The image representations before the classifier (``Psi_hat`` for Zoom-In, ATS's estimate)."""

    features: torch.Tensor  # (B, D)
    entropy: torch.Tensor  # (B,)
    details: list[dict] = field(default_factory=list)
    attention: list[dict] = field(default_factory=list)


@dataclass
class ModelOutput:
    """Output of ``model(images, ...)``."""

    logits: torch.Tensor  # (B, num_classes)
    entropy: torch.Tensor  # (B,)
    details: list[dict] = field(default_factory=list)
    attention: list[dict] = field(default_factory=list)


SAMPLING_MODES = ("sample", "topk")


def check_sampling(sampling: str) -> None:
    """Raise ``ValueError`` unless ``sampling`` is ``"sample"`` or ``"topk"``."""
    if sampling not in SAMPLING_MODES:
        raise ValueError(f"sampling must be one of {SAMPLING_MODES}, got {sampling!r}")


def detached(value):
    """A CPU, gradient-free copy of a tensor, or of the tensors inside a dict."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {key: detached(item) for key, item in value.items()}
    return value
