"""Training losses: ``L = CE + L_con - lambda * entropy (+ mask MSE) (+ model's own)`` (docs/method.md §9).

* :func:`cross_entropy` -- (class-weighted) cross-entropy of the image-level prediction.
* :func:`attention_entropy` / :func:`entropy_regulariser` -- ``-lambda * mean(entropy)``: rewards
  spread-out attention. The entropy of an image is on one of two scales (``entropy_scale``):
  ``image``, each map's entropy as ATS's regulariser takes it (the model's ``ModelOutput.entropy``),
  or ``entry``, each map's entropy divided by its number of entries, as the Zoom-In authors' code
  (:func:`entropy_per_entry`). The same lambda means very different things on the two scales.
* :func:`contrastive_loss` -- in-sample contrastive loss: images of a positive class, represented
  by their LOW-attention sub-tiles (``model.contrastive_logits``), are pushed to the reference class;
  one contrastive example per positive image, weighted as one image of the batch.
* :func:`mask_mse` / :func:`attention_mask_loss` -- MSE between attention maps and pixel
  annotations brought onto the attention grid, as a distribution or as the paper's binary map
  (``mask_target``).
* :func:`total_loss` -- all of the above from one :class:`LossConfig`, plus the model's own
  ``auxiliary_loss`` (baselines with terms of their own), returned as :class:`LossParts`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from zoomin.config.run import ENTROPY_SCALES, MASK_TARGETS
from zoomin.image_access import ImageAccess
from zoomin.models.distributions import entropy
from zoomin.models.output import Attention, AttentionMap, ModelOutput


def cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, class_weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean cross-entropy; with ``class_weights`` the weighted mean ``sum w_y nll / sum w_y``."""
    weight = None if class_weights is None else class_weights.to(logits)
    return F.cross_entropy(logits, targets.to(logits.device), weight=weight)


def entropy_regulariser(entropies: torch.Tensor, weight: float) -> torch.Tensor:
    """``-weight * mean(entropies)``: adding it to the loss rewards higher attention entropy."""
    return -weight * entropies.mean()


def entropy_per_entry(output: ModelOutput) -> torch.Tensor:
    """``(B,)``: per image, the entropy of each of its attention maps divided by the map's number of
    entries, summed over the maps -- ``H(a)/|a| + sum_{t in U} H(b_t)/|b_t|`` for Zoom-In (the drawn
    tiles' maps are summed, not averaged), ``H(p)/|p|`` for a one-stage model. This is the scale of
    the Zoom-In authors' regulariser (``lambda * sum p log p`` over a map, divided by its length).

    It covers the maps the model's own entropy term covers (``ModelOutput.entropy``: Zoom-In, ATS and
    Top-K report the entropies of exactly the maps in their attention). An image whose model term is
    0 gets 0: a model without an entropy term (zeros) stays without one, and for a model with one a
    sum of entropies is 0 only when every map's entropy is."""
    if not output.entropy.numel() or not bool(output.entropy.detach().ne(0).any()):
        return output.entropy
    if len(output.attention) != len(output.entropy):
        raise ValueError("entropy_scale 'entry' needs the attention maps of every image of the batch")
    values = []
    for attention, own in zip(output.attention, output.entropy):
        maps = [attention.stage1, *attention.stage2.values()]
        value = torch.stack([entropy(m.probs.reshape(-1)) / m.probs.numel() for m in maps]).sum()
        values.append(value if bool(own.detach().ne(0)) else own.new_zeros(()))
    return torch.stack(values).to(output.entropy.dtype)


def attention_entropy(output: ModelOutput, scale: str) -> torch.Tensor:
    """``(B,)``: the entropy term of each image on ``scale`` (``image`` or ``entry``; module docstring)."""
    if scale == "image":
        return output.entropy
    if scale == "entry":
        return entropy_per_entry(output)
    raise ValueError(f"entropy scale must be one of {ENTROPY_SCALES}, got {scale!r}")


def contrastive_loss(
    model: torch.nn.Module,
    images: Sequence[ImageAccess],
    labels: torch.Tensor,
    positive_classes: Sequence[int],
    reference_class: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The in-sample contrastive loss of a batch (docs/method.md §9.3).

    Each image whose label is in ``positive_classes`` gives one contrastive example,
    ``model.contrastive_logits`` of its low-attention sub-tiles, whose cross-entropy against
    ``reference_class`` is summed and divided by the number of images in the BATCH: a contrastive
    example weighs what one image's term of the (batch-mean) cross-entropy weighs. This is the
    paper's "half" of a complete contrastive cross-entropy, whose other half would give every
    reference-class image a contrastive example too. (Dividing by the number of positive images
    instead weighed the lone contrastive example of a batch of one positive and three negatives as
    much as all four images' cross-entropy.) Zero when no image of the batch is positive or the
    model has no contrastive branch (CNNs)."""
    positive = [i for i, label in enumerate(labels.tolist()) if label in set(positive_classes)]
    zero = torch.zeros((), device=labels.device)
    if not positive:
        return zero
    logits = model.contrastive_logits([images[i] for i in positive], generator)
    if logits is None:
        return zero
    targets = torch.full((len(positive),), reference_class, dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits, targets, reduction="sum") / len(labels)


def mask_target(mask: torch.Tensor, shape: Sequence[int], target: str = "distribution") -> torch.Tensor:
    """``mask`` (``(h, w)``, values in [0, 1], the object fraction of each pixel) on a ``shape`` grid.

    ``distribution``: area-averaged onto the grid and divided by its sum, so it is a distribution like
    the attention it is compared with (uniform if the mask is empty). ``binary``: 1 on every cell that
    holds some annotated pixel, 0 elsewhere -- the paper's binary segmentation mask at the map's
    resolution (a cell "is ROI" as a patch is in appendix L's pre-training labels)."""
    grid = tuple(int(n) for n in shape)
    if target == "binary":
        return (F.adaptive_max_pool2d(mask[None, None].float(), grid)[0, 0] > 0).float()
    if target != "distribution":
        raise ValueError(f"mask target must be one of {MASK_TARGETS}, got {target!r}")
    averaged = F.adaptive_avg_pool2d(mask[None, None].float(), grid)[0, 0]
    total = averaged.sum()
    return averaged / total if total > 0 else torch.full_like(averaged, 1.0 / averaged.numel())


def mask_mse(attention_map: torch.Tensor, mask: torch.Tensor, target: str = "distribution") -> torch.Tensor:
    """MSE between an attention map and the mask brought onto the same grid (:func:`mask_target`).

    ``mask`` must cover the same region as ``attention_map`` (at any resolution)."""
    wanted = mask_target(mask.to(attention_map.device), attention_map.shape, target)
    return F.mse_loss(attention_map, wanted.to(attention_map.dtype))


def attention_mask_loss(attention: Attention, mask: torch.Tensor, target: str = "distribution") -> torch.Tensor:
    """Mask MSE of one image's live attention (``ModelOutput.attention[i]``).

    ``mask``: ``(h, w)`` in [0, 1] covering the whole image at any scale. The MSE of the stage-1 map
    against the mask over the map's grid (padded with zeros where the grid runs past the image),
    plus the mean MSE of the stage-2 maps (Zoom-In's ``b_t``, each over its tile), if any; ``target``
    as in :func:`mask_target`.
    """
    mask_scale = mask.shape[0] / attention.image_size[0]
    loss = _map_mask_mse(attention.stage1, mask, mask_scale, attention.image_size, target)
    if attention.stage2:
        stage2 = [
            _map_mask_mse(m, mask, mask_scale, attention.image_size, target) for m in attention.stage2.values()
        ]
        loss = loss + torch.stack(stage2).mean()
    return loss


def _map_mask_mse(
    amap: AttentionMap, mask: torch.Tensor, mask_scale: float, image_size: tuple[int, int], target: str
) -> torch.Tensor:
    top, left, height, width = amap.bounds()
    if (top, left, height, width) == (0, 0, *image_size):  # the whole image: the whole mask
        return mask_mse(amap.probs, mask, target)
    region = _crop_padded(
        mask,
        round(top * mask_scale),
        round(left * mask_scale),
        max(1, math.ceil(amap.shape[0] * (amap.cell[0] * mask_scale))),
        max(1, math.ceil(amap.shape[1] * (amap.cell[1] * mask_scale))),
    )
    return mask_mse(amap.probs, region, target)


def _crop_padded(mask: torch.Tensor, top: int, left: int, height: int, width: int) -> torch.Tensor:
    out = mask.new_zeros((height, width))
    y1, x1 = min(top + height, mask.shape[0]), min(left + width, mask.shape[1])
    if y1 > top and x1 > left:
        out[: y1 - top, : x1 - left] = mask[top:y1, left:x1]
    return out


@dataclass
class LossConfig:
    """How the training loss is put together (``TrainingConfig`` documents each setting)."""

    entropy_weight: float = 1e-5
    entropy_scale: str = "image"
    contrastive: bool = False
    positive_classes: tuple[int, ...] = (1,)
    reference_class: int = 0
    class_weights: torch.Tensor | None = None
    mask_weight: float = 0.0
    mask_target: str = "distribution"


@dataclass
class LossParts:
    """The total loss (for ``backward``) and its parts (for logging)."""

    total: torch.Tensor
    cross_entropy: torch.Tensor
    contrastive: torch.Tensor
    entropy: torch.Tensor
    mask: torch.Tensor
    auxiliary: torch.Tensor

    def as_floats(self) -> dict[str, float]:
        return {name: float(getattr(self, name).detach()) for name in self.__dataclass_fields__}


def total_loss(
    output: ModelOutput,
    labels: torch.Tensor,
    config: LossConfig,
    model: torch.nn.Module | None = None,
    images: Sequence[ImageAccess] | None = None,
    generator: torch.Generator | None = None,
    masks: Sequence[torch.Tensor | None] | None = None,
) -> LossParts:
    """``CE + L_con - lambda * entropy + mask_weight * mask MSE + auxiliary`` for one batch.

    ``output``: the :class:`zoomin.models.output.ModelOutput` of ``model(images, generator)``.
    ``auxiliary`` is ``model.auxiliary_loss(output, labels)`` (zero without a model or terms).
    ``model``, ``images`` and ``generator`` are needed only when ``config.contrastive`` is on;
    ``masks`` (one per image, ``None`` where an image has none) only when ``config.mask_weight > 0``.
    ``entropy`` in the result is the mean entropy on ``config.entropy_scale`` (positive; it enters
    the total with ``-lambda``).
    """
    labels = labels.to(output.logits.device)
    zero = output.logits.new_zeros(())
    ce = cross_entropy(output.logits, labels, config.class_weights)
    con = zero
    if config.contrastive:
        if model is None or images is None:
            raise ValueError("the contrastive loss needs the model and the images")
        con = contrastive_loss(
            model, images, labels, config.positive_classes, config.reference_class, generator
        )
    entropies = attention_entropy(output, config.entropy_scale)
    mean_entropy = entropies.mean() if entropies.numel() else zero
    mask = zero
    if config.mask_weight > 0 and masks is not None and output.attention:
        parts = [
            attention_mask_loss(attention, m.to(output.logits.device), config.mask_target)
            for attention, m in zip(output.attention, masks)
            if m is not None
        ]
        if parts:
            mask = torch.stack(parts).mean()
    regulariser = zero
    if entropies.numel():
        regulariser = entropy_regulariser(entropies, config.entropy_weight)
    auxiliary = model.auxiliary_loss(output, labels) if model is not None else None
    auxiliary = zero if auxiliary is None else auxiliary
    total = ce + con + regulariser + config.mask_weight * mask + auxiliary
    return LossParts(total, ce, con, mean_entropy, mask, auxiliary)
