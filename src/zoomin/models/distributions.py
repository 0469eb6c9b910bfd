"""Small operations on discrete attention distributions shared by the models.

* :func:`entropy` -- Shannon entropy (nats) of each row.
* :func:`complement` -- ``normalise(1 - p)``, the low-attention distribution the contrastive loss
  samples from (uniform where ``1 - p`` is all zero, i.e. a single position).
* :func:`largest_remainder_counts` -- the deterministic allocation of ``N`` draws used for top-N
  inference: ``N * p`` rounded down, the left-over draws to the largest remainders.
"""

from __future__ import annotations

import torch


def entropy(probs: torch.Tensor) -> torch.Tensor:
    """``-sum p log p`` over the last dimension (``0 log 0 = 0``)."""
    logs = torch.log(probs.clamp_min(torch.finfo(probs.dtype).tiny))
    return -(probs * logs).sum(dim=-1)


def complement(probs: torch.Tensor) -> torch.Tensor:
    """``(1 - p) / sum(1 - p)`` over the last dimension, uniform where that sum is zero."""
    rest = (1.0 - probs).clamp_min(0.0)
    total = rest.sum(dim=-1, keepdim=True)
    uniform = torch.full_like(probs, 1.0 / probs.shape[-1])
    return torch.where(total > 0, rest / total.clamp_min(torch.finfo(probs.dtype).tiny), uniform)


def largest_remainder_counts(probs: torch.Tensor, total: int) -> torch.Tensor:
    """Integer counts summing to ``total``, as close to ``total * probs`` as rounding allows (1-D)."""
    expected = probs.detach().double().reshape(-1) * total
    base = torch.floor(expected)
    left = int(total - base.sum().item())
    if left > 0:
        order = torch.argsort(expected - base, descending=True, stable=True)
        base[order[:left]] += 1
    return base.long()
