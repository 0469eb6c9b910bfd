"""Running a network over a list of tensors whose shapes may differ, batching equal shapes."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from zoomin.image_access import ImageAccess


def module_placement(module: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Device and floating dtype of a module's parameters."""
    parameter = next(module.parameters())
    return parameter.device, parameter.dtype


def to_module(tensor: torch.Tensor, module: nn.Module) -> torch.Tensor:
    """Move an input tensor (CPU float32 from an ImageAccess) to ``module``'s device and dtype."""
    device, dtype = module_placement(module)
    return tensor.to(device=device, dtype=dtype, non_blocking=True)


def views_on(module: nn.Module, images: Sequence[ImageAccess], scale: float) -> list[torch.Tensor]:
    """Each image's view at ``scale``, on ``module``'s device and dtype."""
    return [to_module(image.view(scale), module) for image in images]


def run_grouped(
    net: Callable[[torch.Tensor], torch.Tensor], tensors: Sequence[torch.Tensor]
) -> list[torch.Tensor]:
    """``[net(t[None])[0] for t in tensors]``, but one call per group of equal shapes."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for position, tensor in enumerate(tensors):
        groups.setdefault(tuple(tensor.shape), []).append(position)
    results: list[torch.Tensor | None] = [None] * len(tensors)
    for positions in groups.values():
        outputs = net(torch.stack([tensors[p] for p in positions]))
        for position, output in zip(positions, outputs):
            results[position] = output
    return results  # type: ignore[return-value]
