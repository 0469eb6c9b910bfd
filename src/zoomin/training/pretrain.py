"""Pre-training the Zoom-In network's parts as tile classifiers from pixel annotations (paper
appendix L; docs/method.md §9.4).

Before the first epoch of a run with ``training.pretrain_epochs > 0``, each training image with a
mask (its mask view from the view cache) gives three sets of labelled examples, a patch labelled 1
when any annotated pixel falls in it and 0 otherwise:

* the stage-1 attention net ``a`` on ``V1``: one example per tile, the net's logit map average-pooled
  over the tile (the pooling the network already does: a global-average-pooling head per tile);
* the stage-2 attention net ``b`` on the ``V2`` views of a few tiles (up to :data:`TILES` with an
  annotated pixel and as many without, drawn at random): one example per position, its logit;
* the feature net ``f`` on full-resolution sub-tiles (up to :data:`SUBTILES` annotated ones per image
  and as many drawn from tiles without annotation) with a linear head that is thrown away after.

The losses are binary cross-entropies, each the mean of its positives' and its negatives' mean (an
annotated region covers well under 1 % of a slide's tissue). On whole slides only tissue tiles
take part (``tissue_only``: the others never get attention). The draws use their own random stream,
so pre-training does not shift the training run's streams.
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from zoomin.data.splits import Subset
from zoomin.image_access import ImageAccess
from zoomin.models.batching import to_module

log = logging.getLogger(__name__)

# Annotated sub-tiles per image given to f (and as many unannotated): bounds the full-resolution
# reads to ~2 x 16 sub-tiles per image and step.
SUBTILES = 16
# Tiles with annotation per image whose V2 view trains b (and as many without).
TILES = 4


def pretrain_tile_classifiers(
    model: nn.Module, subset: Subset, epochs: int, lr: float, batch_size: int, generator: torch.Generator
) -> list[float]:
    """``epochs`` passes of the three tile classifiers over the images of ``subset`` that have a
    mask (Adam at ``lr``, ``batch_size`` images per step); the model's ``a``, ``b`` and ``f`` keep
    the result. Returns the mean loss of each epoch."""
    head = nn.Linear(model.features.out_dim, 1).to(next(model.parameters()).device)
    parameters = [*model.tile_attention.parameters(), *model.subtile_attention.parameters(),
                  *model.features.parameters(), *head.parameters()]
    optimizer = torch.optim.Adam(parameters, lr=lr)
    scale = max(subset.cache.scales)
    annotated = [i for i in range(len(subset)) if subset.cache.mask_view(subset.image_id(i), scale) is not None]
    model.train()
    history = []
    for epoch in range(1, epochs + 1):
        order = [annotated[j] for j in torch.randperm(len(annotated), generator=generator).tolist()]
        total = 0.0
        for start in tqdm(range(0, len(order), batch_size), desc=f"pre-training {epoch}/{epochs}",
                          leave=False, mininterval=5):
            batch = order[start : start + batch_size]
            loss = torch.stack([
                image_loss(model, head, subset.image(i), _mask(subset, i, scale), generator) for i in batch
            ]).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(batch)
        history.append(total / max(1, len(order)))
        log.info("pre-training epoch %d: tile-classifier loss %.4f", epoch, history[-1])
    return history


def _mask(subset: Subset, index: int, scale: float) -> torch.Tensor:
    mask = subset.cache.mask_view(subset.image_id(index), scale)
    return torch.from_numpy(mask).float().div_(255.0)


def image_loss(
    model: nn.Module, head: nn.Module, image: ImageAccess, mask: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """The three tile classifiers' loss on one image with its mask (``(h, w)`` object fractions
    covering the whole image at any scale)."""
    rows, cols = model.grid(image)
    tile_labels = cell_labels(mask, image.size, 0, 0, rows, cols, model.tile)
    logits = model.tile_logits([image])[0]
    tissue = torch.isfinite(logits)
    loss = balanced_bce(logits[tissue], tile_labels.to(logits.device)[tissue])

    tiles = _draw_tiles(tile_labels.reshape(-1), tissue.reshape(-1).cpu(), generator)
    views = []
    for tile in tiles:
        row, col = divmod(tile, cols)
        views.append(image.region_view(row * model.tile, col * model.tile, model.tile, model.s2))
    position_logits = model.subtile_attention(to_module(torch.stack(views), model))
    h2 = position_logits.shape[-1]
    position_labels = torch.stack([
        cell_labels(mask, image.size, divmod(t, cols)[0] * model.tile, divmod(t, cols)[1] * model.tile,
                    h2, h2, model.tile / h2)
        for t in tiles
    ])
    loss = loss + balanced_bce(position_logits.reshape(-1), position_labels.reshape(-1).to(position_logits.device))

    centres, labels = _draw_subtiles(model, image, tiles, position_labels.reshape(len(tiles), -1), generator)
    features = model.features(to_module(image.patches(centres, model.subtile), model))
    return loss + balanced_bce(head(features)[:, 0], labels.to(features.device))


def cell_labels(
    mask: torch.Tensor, image_size: tuple[int, int], top: float, left: float, rows: int, cols: int, cell: float
) -> torch.Tensor:
    """1.0 for each cell of a ``rows x cols`` grid of ``cell`` px (full resolution) from ``(top,
    left)`` that holds any annotated pixel, else 0.0; cells past the image's edge hold none. A mask
    coarser than the cells labels each cell by the mask pixel(s) it falls in."""
    scale = mask.shape[0] / image_size[0]
    y0, x0 = math.floor(top * scale), math.floor(left * scale)
    y1 = max(y0 + 1, math.ceil((top + rows * cell) * scale))
    x1 = max(x0 + 1, math.ceil((left + cols * cell) * scale))
    window = mask.new_zeros((y1 - y0, x1 - x0))
    part = mask[y0:y1, x0:x1]
    window[: part.shape[0], : part.shape[1]] = part
    return (F.adaptive_max_pool2d(window[None, None], (rows, cols))[0, 0] > 0).float()


def balanced_bce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy, the mean of the positives' mean and the negatives' mean (the plain mean
    when one class is absent; zero without examples)."""
    if logits.numel() == 0:
        return logits.sum()
    losses = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    positive = labels > 0.5
    if positive.all() or not positive.any():
        return losses.mean()
    return 0.5 * (losses[positive].mean() + losses[~positive].mean())


def _draw_tiles(labels: torch.Tensor, tissue: torch.Tensor, generator: torch.Generator) -> list[int]:
    """Up to :data:`TILES` annotated tissue tiles and as many unannotated ones (at least one tile)."""
    annotated = _pick(((labels > 0) & tissue).nonzero()[:, 0], TILES, generator)
    plain = _pick(((labels == 0) & tissue).nonzero()[:, 0], max(1, len(annotated)), generator)
    tiles = torch.cat([annotated, plain]).tolist()
    return tiles or [int(tissue.nonzero()[0, 0]) if tissue.any() else 0]


def _draw_subtiles(
    model: nn.Module, image: ImageAccess, tiles: list[int], labels: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Centres and labels of up to :data:`SUBTILES` annotated positions of ``tiles`` (``labels``:
    one row of position labels per tile) and as many unannotated ones, most of them in the
    unannotated tiles, which hold most such positions."""
    annotated = _pick(labels.nonzero(), SUBTILES, generator)
    plain = _pick((labels == 0).nonzero(), max(1, len(annotated)), generator)
    chosen = torch.cat([annotated, plain]).tolist()
    centres = torch.cat([model.subtile_centres(image, tiles[m], torch.tensor([p])) for m, p in chosen])
    return centres, torch.tensor([float(labels[m, p]) for m, p in chosen])


def _pick(candidates: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """At most ``count`` of ``candidates`` (rows), drawn without replacement."""
    if len(candidates) <= count:
        return candidates
    return candidates[torch.randperm(len(candidates), generator=generator)[:count]]
