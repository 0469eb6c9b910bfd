"""An image as a bag of instances, for the multiple-instance baselines (CLAM-SB, MIL, IPS, MRMIL).

The instances are the ``patch`` x ``patch`` px cells (full-resolution px) of a grid from the
image's corner; on a whole slide only the cells that hold tissue (``SlideImage.tile_mask``, from the
slide cache's tissue mask), elsewhere (or on a slide without tissue) every cell. They are read at a
scale (1: full resolution, through ``image.patches``; below 1 one ``region_view`` each), and a small
CNN (:class:`PatchEncoder`) embeds them. :class:`GatedAttention` is the attention pooling CLAM-SB and
MRMIL share; :class:`BagClassifier` the per-image loop all four share.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import nn

from zoomin.image_access import ImageAccess, patch_corner
from zoomin.models.base import Classifier
from zoomin.models.batching import to_module
from zoomin.models.output import Attention, AttentionMap, ModelOutput, SampledRegions, check_sampling
from zoomin.models.standardise import Standardise


class PatchEncoder(nn.Module):
    """``(B, 3, P, P)`` instances -> ``(B, out_dim)`` embeddings, ``out_dim = 2 * width``: a 4x4
    stride-4 stem (the reduction of ResNet's stem and max-pool; a 1-pixel pattern still reaches it),
    two strided 3x3 convolutions, global average pooling. No normalisation layers or dropout, so a
    gradient-free pass and a pass with gradients give the same embeddings."""

    def __init__(self, width: int):
        super().__init__()
        self.out_dim = 2 * width
        self.body = nn.Sequential(
            Standardise(),
            nn.Conv2d(3, width, 4, stride=4),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1),
            nn.ReLU(inplace=True),
        )

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        return self.body(patches).mean(dim=(2, 3))


class GatedAttention(nn.Module):
    """Gated attention pooling (Ilse et al. 2018, as CLAM uses it): ``(n, dim)`` instance features ``h``
    -> the pooled ``(dim,)`` representation ``sum_i a_i h_i`` and the ``(n,)`` weights
    ``a = softmax_i(w . (tanh(V h_i) * sigmoid(U h_i)))``, ``V`` and ``U`` ``inner`` wide."""

    def __init__(self, dim: int, inner: int):
        super().__init__()
        self.v, self.u = nn.Linear(dim, inner), nn.Linear(dim, inner)
        self.w = nn.Linear(inner, 1)

    def forward(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scores = self.w(torch.tanh(self.v(hidden)) * torch.sigmoid(self.u(hidden)))
        weights = torch.softmax(scores[:, 0], dim=0)
        return weights @ hidden, weights


def instance_grid(image: ImageAccess, patch: int) -> tuple[tuple[int, int], torch.Tensor]:
    """The ``(rows, cols)`` grid of ``patch`` px cells from the image's corner and the flat indices of
    its instances: the cells with tissue when the image knows its tissue and has some, else all."""
    height, width = image.size
    shape = (-(-height // patch), -(-width // patch))
    tissue = image.tile_mask(patch)
    if tissue is not None and tissue.any():
        return shape, tissue.reshape(-1).nonzero()[:, 0]
    return shape, torch.arange(shape[0] * shape[1])


def cell_centres(cells: torch.Tensor, cols: int, patch: int) -> torch.Tensor:
    """Full-resolution ``(y, x)`` centres of grid cells given by flat index (their patches' corners
    are then the cells' corners, see :func:`zoomin.image_access.patch_corner`)."""
    rows_, cols_ = torch.div(cells, cols, rounding_mode="floor"), cells % cols
    return torch.stack([rows_, cols_], dim=1).double() * patch + patch / 2.0


def read_instances(
    image: ImageAccess, centres: torch.Tensor, patch: int, scale: float, module: nn.Module
) -> torch.Tensor:
    """The instances centred on ``centres``, read at ``scale``, on ``module``'s device and dtype."""
    if scale == 1:
        return to_module(image.patches(centres, patch), module)
    corners = [(patch_corner(float(y), patch), patch_corner(float(x), patch)) for y, x in centres.tolist()]
    return to_module(torch.stack([image.region_view(top, left, patch, scale) for top, left in corners]), module)


def bag_attention(
    image: ImageAccess, shape: tuple[int, int], patch: int, cells: torch.Tensor, weights: torch.Tensor,
    sampled: torch.Tensor,
) -> Attention:
    """One-stage attention of a bag: ``weights`` (one per instance, >= 0) normalised over the grid's
    cells, and the instances at positions ``sampled`` (into ``cells``) as the regions read."""
    weights = weights.detach().double().cpu()
    probs = torch.zeros(shape[0] * shape[1], dtype=torch.float64)
    probs[cells] = weights / weights.sum().clamp_min(1e-12)
    return Attention(
        image_size=image.size,
        stage1=AttentionMap(probs.reshape(shape), (0.0, 0.0), (float(patch), float(patch))),
        sampled=SampledRegions(cell_centres(cells[sampled], shape[1], patch), patch, cells[sampled]),
    )


class BagResult(NamedTuple):
    """One image's classification by a bag model: its logits, its attention, and what the model's
    ``auxiliary_loss`` needs of it (``None`` if nothing)."""

    logits: torch.Tensor
    attention: Attention
    extra: Any = None


class BagClassifier(Classifier):
    """A model that classifies each image of a batch on its own, as a bag: subclasses implement
    :meth:`classify`; ``forward`` loops over the images. Deterministic: ``generator`` is unused."""

    def classify(self, image: ImageAccess) -> BagResult:
        raise NotImplementedError

    def forward(
        self,
        images: Sequence[ImageAccess],
        generator: torch.Generator | None = None,
        sampling: str = "sample",
    ) -> ModelOutput:
        check_sampling(sampling)
        results = [self.classify(image) for image in images]
        logits = torch.stack([r.logits for r in results])
        return ModelOutput(
            logits, torch.zeros(len(images), device=logits.device), [r.attention for r in results],
            [r.extra for r in results],
        )
