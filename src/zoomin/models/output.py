"""What every model returns: logits, the attention entropy term, and typed attention.

Attention is described the same way for every model that has it, so losses, figures and
predictions never ask which model made it:

* :class:`AttentionMap` -- a distribution over a grid of cells laid over the image at full
  resolution (Zoom-In's tile attention ``a``, ATS's attention over its view, and one per drawn tile
  for Zoom-In's ``b_t``);
* :class:`SampledRegions` -- the full-resolution sub-tiles (patches) the model read, by centre;
* :class:`Attention` -- one image's stage-1 map, its stage-2 maps (empty for one-stage models),
  the sampled regions and the draws per stage-1 cell.

The tensors of the maps are live (on the model's device, in the autograd graph) so losses can
supervise them; :meth:`Attention.detached` gives a CPU copy for figures and files.

The batched models (Zoom-In, ATS) compute the attention of a whole batch in a few tensors and
return it as a :class:`LazyAttention`: a sequence that builds an image's :class:`Attention` (slices
of those tensors) when it is first read, so a training step that reads none pays nothing for it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, overload

import torch


@dataclass
class AttentionMap:
    """``probs`` (``(rows, cols)``, summing to 1) over cells of ``cell`` full-resolution px, the
    top-left cell's corner at ``origin`` (full-resolution ``(y, x)``). The grid may run past the
    image (Zoom-In pads it to whole tiles)."""

    probs: torch.Tensor
    origin: tuple[float, float]
    cell: tuple[float, float]

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.probs.shape[0]), int(self.probs.shape[1])

    def bounds(self) -> tuple[float, float, float, float]:
        """``(top, left, height, width)`` of the whole grid in full-resolution px."""
        rows, cols = self.shape
        return self.origin[0], self.origin[1], rows * self.cell[0], cols * self.cell[1]

    def detached(self) -> AttentionMap:
        return replace(self, probs=self.probs.detach().cpu())


@dataclass
class SampledRegions:
    """Full-resolution ``size`` x ``size`` regions centred on ``centres`` (``(n, 2)``, ``(y, x)``),
    in draw order; ``cells[i]`` is the stage-1 cell (tile) region ``i`` was drawn in, if any."""

    centres: torch.Tensor
    size: int
    cells: torch.Tensor | None = None

    def detached(self) -> SampledRegions:
        cells = None if self.cells is None else self.cells.detach().cpu()
        return SampledRegions(self.centres.detach().cpu(), self.size, cells)


@dataclass
class Attention:
    """One image's attention; see the module docstring. ``counts`` (shaped like ``stage1``) is
    how many of the N draws fell in each stage-1 cell (two-stage models only)."""

    image_size: tuple[int, int]
    stage1: AttentionMap
    stage2: dict[int, AttentionMap] = field(default_factory=dict)
    sampled: SampledRegions | None = None
    counts: torch.Tensor | None = None

    def detached(self) -> Attention:
        return Attention(
            self.image_size,
            self.stage1.detached(),
            {cell: m.detached() for cell, m in self.stage2.items()},
            None if self.sampled is None else self.sampled.detached(),
            None if self.counts is None else self.counts.detach().cpu(),
        )


class LazyAttention(Sequence[Attention]):
    """``size`` images' attention, image ``i``'s built by ``build(i)`` when first read, then kept."""

    def __init__(self, size: int, build: Callable[[int], Attention]):
        self._build = build
        self._built: list[Attention | None] = [None] * size

    def __len__(self) -> int:
        return len(self._built)

    @overload
    def __getitem__(self, index: int) -> Attention: ...

    @overload
    def __getitem__(self, index: slice) -> list[Attention]: ...

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        built = self._built[index]
        if built is None:
            built = self._built[index] = self._build(index)
        return built


@dataclass
class Representation:
    """The image representations before the classifier (``Psi_hat`` for Zoom-In, ATS's estimate)."""

    features: torch.Tensor  # (B, D)
    entropy: torch.Tensor  # (B,)
    attention: Sequence[Attention] = field(default_factory=list)


@dataclass
class ModelOutput:
    """Output of ``model(images, ...)``. ``attention`` has one entry per image (a list, or a
    :class:`LazyAttention`), or none for models without attention. ``extras`` is for the model's
    own :meth:`auxiliary_loss`, if it has one."""

    logits: torch.Tensor  # (B, num_classes)
    entropy: torch.Tensor  # (B,)
    attention: Sequence[Attention] = field(default_factory=list)
    extras: Any = None


SAMPLING_MODES = ("sample", "topk")


def check_sampling(sampling: str) -> None:
    """Raise ``ValueError`` unless ``sampling`` is ``"sample"`` or ``"topk"``."""
    if sampling not in SAMPLING_MODES:
        raise ValueError(f"sampling must be one of {SAMPLING_MODES}, got {sampling!r}")
