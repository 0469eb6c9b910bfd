"""Reading a batch's pixels into one tensor, and running a network over tensors of several shapes.

* :func:`read_views`, :func:`read_regions`, :func:`read_patches` -- the views of a batch's images,
  the views of its drawn regions, and its sub-tiles, each as one ``(n, C, h, w)`` tensor on a
  module's device. Images that offer the uint8 readers (``view_array``, ``region_array``,
  ``patch_arrays``; :mod:`zoomin.image_access`) are read into one uint8 array, which becomes a
  float tensor in one conversion; the others through the tensor readers, one tensor each. The
  loops here only read pixels: nothing they do is differentiable.
* :func:`extent_mask` -- which pixels of a zero-padded batch belong to each image.
* :func:`run_grouped` -- a network over a list of tensors, one call per group of equal shapes
  (the models that are not batched over sizes).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from zoomin.image_access import ImageAccess, to_chw_float


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


def _uint8_on(stacked: np.ndarray, module: nn.Module) -> torch.Tensor:
    """NxHxWxC uint8 -> NxCxHxW in [0, 1] on ``module``'s device and dtype: the uint8 moves (a
    quarter of the bytes), then one conversion; the tensor stays channels-last in memory, the
    layout of the models' convolutions."""
    device, dtype = module_placement(module)
    pixels = torch.from_numpy(stacked).to(device, non_blocking=True).permute(0, 3, 1, 2)
    return pixels.float().div_(255.0).to(dtype)


def _batch(items: Sequence[np.ndarray | torch.Tensor], shape: tuple[int, int], module: nn.Module) -> torch.Tensor:
    """``(n, C, *shape)`` on ``module``: each item (HxWxC uint8 or CxHxW float in [0, 1]) cropped to
    ``shape`` and zero-padded at the bottom and right."""
    height, width = shape
    if all(isinstance(item, np.ndarray) for item in items):
        channels = items[0].shape[2] if items else 3
        if all(item.shape[:2] == shape for item in items) and items:
            stacked = np.stack(items)
        else:
            stacked = np.zeros((len(items), height, width, channels), dtype=np.uint8)
            for out, item in zip(stacked, items):
                part = item[:height, :width]
                out[: part.shape[0], : part.shape[1]] = part
        return _uint8_on(stacked, module)
    tensors = [to_chw_float(item) if isinstance(item, np.ndarray) else item for item in items]
    out = torch.zeros((len(tensors), tensors[0].shape[0], height, width))
    for target, tensor in zip(out, tensors):
        part = tensor[:, :height, :width]
        target[:, : part.shape[1], : part.shape[2]] = part
    return to_module(out, module)


def read_views(
    images: Sequence[ImageAccess], scale: float, shape: tuple[int, int], module: nn.Module
) -> torch.Tensor:
    """``(B, C, *shape)``: each image's view at ``scale``, cropped to ``shape`` and zero-padded."""
    items = []
    for image in images:  # a uint8 array where the image has a uint8 reader, else its tensor
        array = image.view_array(scale)
        items.append(array if array is not None else image.view(scale))
    return _batch(items, shape, module)


def read_regions(
    images: Sequence[ImageAccess],
    owners: Sequence[int],
    corners: Sequence[tuple[int, int]],
    size: int,
    scale: float,
    side: int,
    module: nn.Module,
) -> torch.Tensor:
    """``(M, C, side, side)``: the ``size``-px region at ``corners[m]`` (top, left) of image
    ``images[owners[m]]``, viewed at ``scale`` (``side`` px)."""
    items = []
    for owner, (top, left) in zip(owners, corners):
        image = images[owner]
        array = image.region_array(top, left, size, scale)
        items.append(array if array is not None else image.region_view(top, left, size, scale))
    return _batch(items, (side, side), module)


def read_patches(
    images: Sequence[ImageAccess], owners: np.ndarray, centres: np.ndarray, size: int, module: nn.Module
) -> torch.Tensor:
    """``(K, C, size, size)``: full-resolution patches centred on ``centres`` (``(K, 2)``, ``(y, x)``)
    of ``images[owners[k]]``; one read per run of consecutive patches of one image."""
    blocks: list[np.ndarray | torch.Tensor] = []
    starts = np.flatnonzero(np.diff(owners, prepend=-1)) if len(owners) else np.zeros(0, dtype=int)
    for start, stop in zip(starts, list(starts[1:]) + [len(owners)]):
        image, run = images[int(owners[start])], centres[start:stop]
        array = image.patch_arrays(run, size)
        blocks.append(array if array is not None else image.patches(torch.from_numpy(run), size))
    if not blocks:
        return to_module(torch.zeros((0, 3, size, size)), module)
    if all(isinstance(block, np.ndarray) for block in blocks):
        return _uint8_on(np.concatenate(blocks), module)
    tensors = [block if isinstance(block, torch.Tensor) else _uint8_on(block, module) for block in blocks]
    return torch.cat([to_module(tensor, module) for tensor in tensors])


def extent_mask(
    extents: Sequence[tuple[int, int]], shape: tuple[int, int], device: torch.device
) -> torch.Tensor | None:
    """``(B, 1, *shape)`` float: 1 on the ``extents[b]`` (height, width) top-left pixels of image
    ``b``, 0 on its padding; ``None`` when no image is padded."""
    if all(tuple(extent) == tuple(shape) for extent in extents):
        return None
    sizes = torch.tensor(extents, device=device)
    rows = torch.arange(shape[0], device=device)[None, :, None] < sizes[:, 0, None, None]
    cols = torch.arange(shape[1], device=device)[None, None, :] < sizes[:, 1, None, None]
    return (rows & cols).unsqueeze(1).float()


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
