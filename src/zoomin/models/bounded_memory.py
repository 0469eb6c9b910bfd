"""Inference in bounded memory: attention logits over a view in row bands, nets over chunks.

At inference the Zoom-In network never needs a whole stage-1 view, a whole batch of stage-2
views or all N sub-tiles at once:

* :func:`banded_logits` runs a stride-1 attention net (3x3 convolutions and point-wise layers)
  over the zero-padded view one band of rows at a time. Each band is read from the image with
  :func:`zoomin.image_access.view_rows` (an HDF5 slide or view cache reads only those rows) with
  :func:`receptive_halo` extra rows on either side, and only the band's own rows of the output are
  kept. An output row depends on the input rows within the halo and nothing else, and the rows
  cut off by a band edge are exactly those the halo discards, so the logits are those of the
  whole-view computation (bit-identical up to the order in which the convolution kernel sums;
  ``tests/models/test_bounded_memory.py`` checks 1e-5). The band's height follows from a pixel budget.
* :func:`row_slices` splits the rows of a batch (drawn tiles or regions, sub-tiles) into runs whose
  pixel count fits the same budget, for the stage-2 views, their draws and the sub-tile features
  (Zoom-In's estimate is a sum over sub-tiles, so features computed chunk by chunk give the same
  estimate, and the draws of consecutive chunks take the random numbers of one call).
* :class:`StreamsAtInference` is what the models that do this share: when they stream (eval mode,
  autograd off) and their budget, ``chunk_pixels``.

Memory then grows with the budget (and the N sub-tiles' small outputs), not with the image.
Training keeps the whole-batch computation: its autograd graph keeps every activation anyway.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from zoomin.image_access import ImageAccess, view_shape
from zoomin.models.batching import read_patches, to_module

# Pixels (of a view, or of sub-tiles) one chunk may hold: one 256-px sub-tile of LeNet features
# (~20 MB of activations), one 256-px stage-2 view, or a band of one or two tile rows of a
# 100,000-px slide's stage-1 view.
CHUNK_PIXELS = 1 << 16

POINTWISE = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.Identity, nn.LeakyReLU, nn.GELU)


def receptive_halo(net: nn.Module) -> int:
    """Rows of input context on each side that one output row of ``net`` needs.

    ``net`` may hold only stride-1, size-preserving ("same", zero-padded) convolutions and
    point-wise layers (activations, and modules without parameters such as the input
    standardisation); anything that mixes rows otherwise is refused with a ``ValueError``.
    """
    halo = 0
    for module in net.modules():
        if isinstance(module, nn.Conv2d):
            reach = (module.kernel_size[0] - 1) * module.dilation[0]  # rows only: bands span the width
            if module.padding == "same":
                padding = reach // 2
            else:
                padding = module.padding[0] if isinstance(module.padding, tuple) else 0
            if module.stride[0] != 1 or module.padding_mode != "zeros" or reach != 2 * padding:
                raise ValueError(f"cannot stream {module}: only stride-1 'same' zero-padded convolutions")
            halo += padding
        elif isinstance(module, (nn.BatchNorm2d, nn.MaxPool2d, nn.AvgPool2d, nn.Upsample)) or (
            not isinstance(module, POINTWISE) and list(module.children()) == [] and list(module.parameters())
        ):
            raise ValueError(f"cannot stream {module}: it is not point-wise")
    return halo


def band_rows(step: int, row_pixels: int, budget: int) -> int:
    """How many units of ``step`` rows (tile rows of a stage-1 view) a band of ``budget`` pixels
    holds when a row has ``row_pixels`` pixels (at least one)."""
    return max(1, budget // max(1, step * row_pixels))


@torch.no_grad()
def banded_logits(
    net: nn.Module,
    image: ImageAccess,
    scale: float,
    grid: tuple[int, int],
    pool: int,
    budget: int = CHUNK_PIXELS,
    module: nn.Module | None = None,
) -> torch.Tensor:
    """``avg_pool(net(V), pool)`` over the view ``V = image.view(scale)`` cropped or zero-padded to
    ``grid`` cells of ``pool`` x ``pool`` pixels, computed band by band (module docstring).

    Returns ``(rows, cols)`` (``grid``); ``pool = 1`` gives the logit map itself. ``module`` is the
    model whose device and dtype the bands are moved to (default ``net``).
    """
    rows, cols = grid
    height, width = rows * pool, cols * pool
    view_h, view_w = view_shape(image.size, scale)
    halo = receptive_halo(net)
    placement = module if module is not None else net
    per_band = band_rows(pool, width, budget)
    out = []
    for r0 in range(0, rows, per_band):
        r1 = min(rows, r0 + per_band)
        y0, y1 = r0 * pool, r1 * pool
        top, stop = max(0, y0 - halo), min(height, y1 + halo)
        band = torch.zeros((image.channels, stop - top, width))
        if top < view_h:
            pixels = image.view_rows(scale, top, min(stop, view_h))[:, :, : min(width, view_w)]
            band[:, : pixels.shape[1], : pixels.shape[2]] = pixels
        logits = net(to_module(band, placement)[None])[0]
        logits = logits[y0 - top : y1 - top]
        out.append(F.avg_pool2d(logits[None, None], pool)[0, 0] if pool > 1 else logits)
    return torch.cat(out)


def row_slices(count: int, pixels_each: int, budget: int | None) -> list[slice]:
    """``range(count)`` as consecutive slices of at most ``budget // pixels_each`` rows (at least
    one); ``budget=None``: one slice of every row (training, whose autograd graph holds them all)."""
    size = max(1, count) if budget is None else max(1, budget // max(1, pixels_each))
    return [slice(start, min(count, start + size)) for start in range(0, count, size)]


class StreamsAtInference:
    """What a model that computes in bounded memory at inference shares: when it streams, the pixels
    of one band or chunk (its ``chunk_pixels``, :data:`CHUNK_PIXELS` unless a caller sets it), and
    its feature net ``f`` over the sampled ``subtile`` px sub-tiles, a chunk at a time."""

    training: bool
    features: nn.Module
    subtile: int
    chunk_pixels: int = CHUNK_PIXELS

    def streams(self) -> bool:
        """Whether a call computes in bounded memory (eval mode, autograd off: inference)."""
        return not self.training and not torch.is_grad_enabled()

    def chunk_budget(self) -> int | None:
        """Pixels per chunk: ``chunk_pixels`` at inference, ``None`` (everything at once) in training,
        whose autograd graph holds every activation anyway."""
        return self.chunk_pixels if self.streams() else None

    def subtile_features(
        self, images: Sequence[ImageAccess], owners: np.ndarray, centres: np.ndarray
    ) -> torch.Tensor:
        """``f`` of the sub-tiles centred on ``centres`` of ``images[owners]``: one call in training,
        ``chunk_pixels`` at a time at inference (only one chunk's sub-tiles are ever read at once)."""
        parts = []
        for part in row_slices(max(1, len(owners)), self.subtile * self.subtile, self.chunk_budget()):
            parts.append(self.features(read_patches(images, owners[part], centres[part], self.subtile, self)))
        return torch.cat(parts) if len(parts) != 1 else parts[0]
