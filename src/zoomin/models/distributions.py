"""Small operations on discrete attention distributions shared by the models.

* :func:`entropy` -- Shannon entropy (nats) of each row.
* :func:`complement` -- ``normalise(1 - p)``, the low-attention distribution the contrastive loss
  samples from (uniform where ``1 - p`` is all zero, i.e. a single position), on a support.
* :func:`largest_remainder_counts` -- the deterministic allocation of ``N`` draws used for top-N
  inference: ``N * p`` rounded down, the left-over draws to the largest remainders.

All of them work row by row over the last dimension, so a batch is one call.
"""

from __future__ import annotations

import torch


def entropy(probs: torch.Tensor) -> torch.Tensor:
    """``-sum p log p`` over the last dimension (``0 log 0 = 0``)."""
    logs = torch.log(probs.clamp_min(torch.finfo(probs.dtype).tiny))
    return -(probs * logs).sum(dim=-1)


def complement(probs: torch.Tensor, support: torch.Tensor | None = None) -> torch.Tensor:
    """``(1 - p) / sum(1 - p)`` over the last dimension, uniform where that sum is zero.

    ``support`` (bool, like ``probs``) restricts both to the positions it marks (a padded row's
    real positions; a slide's tissue tiles): the others get zero.
    """
    rest = (1.0 - probs).clamp_min(0.0)
    if support is None:
        uniform = torch.full_like(probs, 1.0 / probs.shape[-1])
    else:
        rest = rest * support
        uniform = support / support.sum(dim=-1, keepdim=True).clamp_min(1)
    total = rest.sum(dim=-1, keepdim=True)
    return torch.where(total > 0, rest / total.clamp_min(torch.finfo(probs.dtype).tiny), uniform.to(probs.dtype))


def largest_remainder_counts(probs: torch.Tensor, total: int | torch.Tensor) -> torch.Tensor:
    """Integer counts summing to ``total``, as close to ``total * probs`` as rounding allows, for
    each row of ``probs`` (``(..., n)``; ``total``: a number or one per row); ties go to the lower index."""
    totals = torch.as_tensor(total, dtype=torch.float64, device=probs.device)
    expected = probs.detach().double() * (totals.unsqueeze(-1) if totals.dim() else totals)
    base = torch.floor(expected)
    left = (totals - base.sum(dim=-1)).round().long()
    order = torch.argsort(expected - base, dim=-1, descending=True, stable=True)
    positions = torch.arange(probs.shape[-1], device=probs.device).expand_as(order)
    rank = torch.empty_like(order).scatter_(-1, order, positions)
    return (base + (rank < left.unsqueeze(-1))).long()
