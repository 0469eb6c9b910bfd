"""Monte Carlo estimators of ``sum_i p_i f_i`` whose values AND gradients are unbiased.

``p`` is an attention distribution (a softmax of logits), ``f_i`` a feature vector. The estimators
return a surrogate: its value is the Monte Carlo estimate, and its gradient, taken by autograd, is
an unbiased estimate of the gradient of the exact sum with respect to both the features and the
logits behind ``p``. The trick is the score-function correction ``p_i / stopgrad(p_i)``: equal to
one in value, it contributes ``f_i * grad(log p_i)`` to the gradient where the draw of ``i``
depended on ``p``.

With replacement (draws ``i_1..i_N`` i.i.d. from ``p``)::

    est = 1/N sum_n (p_{i_n} / sg(p_{i_n})) f_{i_n}

Without replacement (ordered distinct draws ``j_1..j_k``, e.g. Gumbel-top-k), ATS-style::

    est = 1/k sum_i [ sum_{l<i} p_{j_l} f_{j_l}
                      + sg(1 - S_{i-1}) (p_{j_i} / sg(p_{j_i})) f_{j_i} ],   S_{i-1} = sum_{l<i} p_{j_l}

where the prefix sums are EXCLUSIVE. Given the first ``i-1`` draws the bracket always has the
exact sum as its conditional expectation, in value and in gradient; an inclusive cumsum (a bug in
public ports) breaks that.

Two stages (docs/method.md §5-§6): tile counts ``k_t`` from ``N`` draws with replacement of ``a``,
and per-tile inner estimates ``E_t``::

    Psi_hat = sum_t (k_t / N) (a_t / sg(a_t)) E_t
"""

from __future__ import annotations

import torch


def _score_weight(probs: torch.Tensor) -> torch.Tensor:
    """``p / stopgrad(p)``: one in value, ``grad log p`` in gradient."""
    return probs / probs.detach()


def expectation_with_replacement(
    probs: torch.Tensor, indices: torch.Tensor, features: torch.Tensor
) -> torch.Tensor:
    """Estimate ``sum_i probs[i] * f_i`` from i.i.d. draws.

    ``probs``: ``(n,)``; ``indices``: ``(N,)`` draws; ``features``: ``(N, ...)`` features of the
    drawn positions, in draw order. Returns a tensor shaped like one feature.
    """
    weights = _score_weight(probs[indices])
    return (_expand(weights, features) * features).mean(dim=0)


def expectation_without_replacement(
    probs: torch.Tensor, indices: torch.Tensor, features: torch.Tensor
) -> torch.Tensor:
    """Estimate ``sum_i probs[i] * f_i`` from ordered distinct draws (see module docstring).

    ``probs``: ``(n,)``; ``indices``: ``(k,)`` distinct draws in order; ``features``: ``(k, ...)``.
    """
    drawn = probs[indices]
    mass_before = torch.cumsum(drawn, dim=0) - drawn  # exclusive prefix sum S_{i-1}
    remaining = (1.0 - mass_before).detach().clamp_min(0.0)
    weighted = _expand(drawn, features) * features
    exact_part = torch.cumsum(weighted, dim=0) - weighted  # exclusive prefix sum of p f
    sampled_part = _expand(remaining * _score_weight(drawn), features) * features
    return (exact_part + sampled_part).mean(dim=0)


def two_stage_expectation(
    tile_probs: torch.Tensor, tile_counts: torch.Tensor, tile_estimates: dict[int, torch.Tensor]
) -> torch.Tensor:
    """Combine per-tile inner estimates ``E_t`` into ``Psi_hat``.

    ``tile_probs``: ``(n_tiles,)`` stage-1 attention; ``tile_counts``: ``(n_tiles,)`` multinomial
    counts of ``N`` draws; ``tile_estimates``: ``E_t`` for every tile with a positive count.
    """
    total = tile_counts.sum()
    tiles = sorted(tile_estimates)
    index = torch.as_tensor(tiles, device=tile_probs.device)
    weights = _score_weight(tile_probs[index]) * tile_counts[index].to(tile_probs.dtype) / total
    stacked = torch.stack([tile_estimates[t] for t in tiles])
    return (_expand(weights, stacked) * stacked).sum(dim=0)


def _expand(weights: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return weights.reshape(weights.shape + (1,) * (like.dim() - 1))
