"""Streaming CNN (Pinckaers, van Ginneken & Litjens, TPAMI 2020), a Table 2 baseline.

A CNN trained end to end on a whole (downscaled) slide, in bounded memory: the first layers (the
*streamed* part) run tile by tile, forward and backward, and only their output -- a feature map a
fraction of the view's size -- is ever whole in memory.

* The streamed part is a stack of unpadded 3x3 convolutions, each followed by ReLU and a 2x2
  max-pool. Without padding every output pixel depends only on its receptive field, so the output
  rows ``[a, b)`` are a function of the input rows :func:`input_span` gives, and the output computed
  tile by tile equals the output computed on the whole view, exactly (:func:`streamed_features`).
* Forward: each output tile is computed from its input crop without gradients and written into the
  feature map. Backward (:class:`_Streamed`): each tile is recomputed from its crop with gradients
  and back-propagated with its slice of the feature map's gradient; the parameters' gradients are
  summed over the tiles. This is the streaming algorithm of Pinckaers et al. (gradient
  checkpointing per tile); ``tests/models/test_streaming_cnn.py`` checks its gradients against
  back-propagation through the whole view.
* The rest of the network sees the whole feature map: global max pooling (Pinckaers et al.'s choice
  for slides) and a linear classifier.

The input is the whole image's view at ``scale`` (for slides, from the slide cache); the network is
CPU-sized (``width`` channels, doubled per block; Pinckaers et al. stream an ImageNet ResNet-34 over
slides at 8,192-16,384 px): docs/methods.md, Streaming CNN.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from zoomin.errors import UserError
from zoomin.image_access import ImageAccess
from zoomin.models.base import Classifier
from zoomin.models.batching import to_module
from zoomin.models.output import ModelOutput, check_sampling
from zoomin.models.params import StreamingCNNParams
from zoomin.models.standardise import Standardise

# (kernel, stride) of each spatial layer of a block: an unpadded 3x3 convolution, then a 2x2 max-pool
BLOCK_GEOMETRY = ((3, 1), (2, 2))


def input_span(geometry: Sequence[tuple[int, int]], start: int, stop: int) -> tuple[int, int]:
    """Input rows ``[start', stop')`` that output rows ``[start, stop)`` of unpadded layers of
    ``(kernel, stride)`` depend on (the same holds for columns)."""
    for kernel, stride in reversed(geometry):
        start, stop = start * stride, (stop - 1) * stride + kernel
    return start, stop


def output_length(geometry: Sequence[tuple[int, int]], length: int) -> int:
    """Output length of unpadded layers of ``(kernel, stride)`` (floor mode) on ``length`` inputs."""
    for kernel, stride in geometry:
        length = (length - kernel) // stride + 1 if length >= kernel else 0
    return length


def tiles(length: int, tile: int) -> list[tuple[int, int]]:
    """``[start, stop)`` output spans of at most ``tile`` covering ``range(length)``."""
    return [(start, min(start + tile, length)) for start in range(0, length, tile)]


class _Streamed(torch.autograd.Function):
    """The streamed part's output, forward and backward tile by tile (see the module docstring)."""

    @staticmethod
    def forward(ctx, view, net, geometry, tile, *parameters):  # noqa: ANN001, ANN205 - autograd API
        ctx.net, ctx.geometry, ctx.tile = net, geometry, tile
        ctx.save_for_backward(view)
        return streamed_features(net, geometry, view, tile)

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205 - autograd API
        (view,) = ctx.saved_tensors
        parameters = [p for p in ctx.net.parameters() if p.requires_grad]
        totals = [torch.zeros_like(p) for p in parameters]
        with torch.enable_grad():
            for rows, cols, (r0, r1), (c0, c1) in _tile_spans(ctx.geometry, view.shape[-2:], ctx.tile):
                out = ctx.net(view[:, :, r0:r1, c0:c1])
                parts = torch.autograd.grad(out, parameters, grad[:, :, rows[0] : rows[1], cols[0] : cols[1]])
                for total, part in zip(totals, parts):
                    total += part
        by_parameter = dict(zip(map(id, parameters), totals))
        return (None, None, None, None, *(by_parameter.get(id(p)) for p in ctx.net.parameters()))


def _tile_spans(geometry, size, tile):  # noqa: ANN001, ANN202 - internal
    """Each output tile ``(rows, cols)`` with the input crop ``(r0, r1), (c0, c1)`` it needs."""
    height, width = (output_length(geometry, int(n)) for n in size)
    for rows in tiles(height, tile):
        for cols in tiles(width, tile):
            yield rows, cols, input_span(geometry, *rows), input_span(geometry, *cols)


def streamed_features(
    net: nn.Module, geometry: Sequence[tuple[int, int]], view: torch.Tensor, tile: int
) -> torch.Tensor:
    """``net(view)`` computed ``tile`` x ``tile`` output pixels at a time, without gradients."""
    height, width = (output_length(geometry, int(n)) for n in view.shape[-2:])
    out = None
    with torch.no_grad():
        for rows, cols, (r0, r1), (c0, c1) in _tile_spans(geometry, view.shape[-2:], tile):
            part = net(view[:, :, r0:r1, c0:c1])
            if out is None:
                out = part.new_zeros((view.shape[0], part.shape[1], height, width))
            out[:, :, rows[0] : rows[1], cols[0] : cols[1]] = part
    return out


class StreamingCNN(Classifier):
    """A CNN over the whole view, its first blocks streamed; see the module docstring."""

    def __init__(self, num_classes: int, params: StreamingCNNParams):
        super().__init__()
        self.params = params
        layers: list[nn.Module] = [Standardise()]
        channels = 3
        for block in range(params.blocks):
            out = params.width * 2**block
            layers += [nn.Conv2d(channels, out, 3), nn.ReLU(), nn.MaxPool2d(2)]
            channels = out
        self.stream = nn.Sequential(*layers)
        self.geometry = BLOCK_GEOMETRY * params.blocks
        self.classifier = nn.Linear(channels, num_classes)

    @property
    def output_tile(self) -> int:
        """Side of a streamed tile in feature-map pixels (``tile`` view pixels)."""
        return max(1, self.params.tile // 2**self.params.blocks)

    def features(self, view: torch.Tensor) -> torch.Tensor:
        """The streamed part's feature map of one ``(1, 3, H, W)`` view."""
        parameters = [p for p in self.stream.parameters()]
        if torch.is_grad_enabled() and any(p.requires_grad for p in parameters):
            return _Streamed.apply(view, self.stream, self.geometry, self.output_tile, *parameters)
        return streamed_features(self.stream, self.geometry, view, self.output_tile)

    def forward(
        self,
        images: Sequence[ImageAccess],
        generator: torch.Generator | None = None,
        sampling: str = "sample",
    ) -> ModelOutput:
        """Logits from the global max of each view's streamed feature map (deterministic)."""
        check_sampling(sampling)
        pooled = []
        for index, image in enumerate(images):
            view = to_module(image.view(self.params.scale), self)[None]
            if min(output_length(self.geometry, n) for n in view.shape[-2:]) < 1:
                raise UserError(
                    f"Streaming CNN: the view of image {index} of the batch at scale {self.params.scale} is "
                    f"{view.shape[-2]}x{view.shape[-1]} px, smaller than the {input_span(self.geometry, 0, 1)[1]} px "
                    "one feature needs. Raise the method's `scale` or lower `blocks`."
                )
            pooled.append(self.features(view).amax(dim=(2, 3))[0])
        logits = self.classifier(torch.stack(pooled))
        return ModelOutput(logits, torch.zeros(len(images), device=logits.device))
