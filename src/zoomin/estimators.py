"""Monte Carlo estimators of ``sum_i p_i f_i`` whose values AND gradients are unbiased.

``p`` is an attention distribution (a softmax of logits), ``f_i`` a feature vector. The estimators
return a surrogate: its value is the Monte Carlo estimate, and its gradient, taken by autograd, is
an unbiased estimate of the gradient of the exact sum with respect to both the features and the
logits behind ``p``. The trick is the score-function correction ``p_i / stopgrad(p_i)``: equal to
one in value, it contributes ``f_i * grad(log p_i)`` to the gradient where the draw of ``i``
depended on ``p``.

Every estimator here is a weighted sum of the drawn features, ``sum_d w_d f_d``, so the code
computes per-draw WEIGHTS (live tensors: their gradient is the estimator's) and the models sum
``w_d f_d`` over the draws of each image in one segment sum. Weights broadcast over leading batch
dimensions (one row per image or per drawn tile); ``valid`` marks the draws of a padded row.

With replacement (draws ``i_1..i_N`` i.i.d. from ``p``; :func:`with_replacement_weights`)::

    est = 1/N sum_n (p_{i_n} / sg(p_{i_n})) f_{i_n}

or, keeping only the distinct cells drawn and their counts ``k`` (:func:`count_weights`), the
weight of a cell is ``(k / N) p / sg(p)``.

Without replacement (ordered distinct draws ``j_1..j_k``, e.g. Gumbel-top-k), ATS-style::

    est = 1/k sum_i [ sum_{l<i} p_{j_l} f_{j_l}
                      + sg(1 - S_{i-1}) (p_{j_i} / sg(p_{j_i})) f_{j_i} ],   S_{i-1} = sum_{l<i} p_{j_l}

where the prefix sums are EXCLUSIVE. Given the first ``i-1`` draws the bracket always has the
exact sum as its conditional expectation, in value and in gradient; an inclusive cumsum (a bug in
public ports) breaks that. Collecting the terms of each draw gives the weight of draw ``i``
(0-based) in :func:`without_replacement_weights`::

    w_i = [ (k - 1 - i) p_{j_i} + sg(1 - S_{i-1}) p_{j_i} / sg(p_{j_i}) ] / k

Two stages (docs/method.md §5-§6): tile counts ``k_t`` from ``N`` draws with replacement of ``a``,
and per-tile inner estimates ``E_t``::

    Psi_hat = sum_t (k_t / N) (a_t / sg(a_t)) E_t

Control variates (docs/method.md §6.1). The score-function part of the gradient,
``f_d grad log p_d``, has no baseline: every draw pushes its own probability up in proportion to
its whole feature vector. A control variate adds a term whose VALUE is zero and whose gradient
replaces ``f_d`` by ``f_d - c_d`` in the score part, for a stop-gradient baseline ``c_d`` that is
independent of draw ``d`` given what the estimator conditions on:

* with replacement (:func:`count_control_variate`): ``-(k/N)(p/sg(p) - 1) sg(c)`` per cell, with
  ``c`` the mean of the OTHER draws (:func:`leave_one_out_baseline`); i.i.d. draws make it
  independent of the draw it is the baseline of;
* without replacement (:func:`without_replacement_control_variate`): the baseline of draw ``i`` is
  added back exactly through the remaining mass, ``c_i (1 - S_{i-1})``, and subtracted from the
  sampled term, ``sg(1 - S_{i-1}) (p/sg(p)) c_i``; the later draws of the same row depend on
  draw ``i`` (the draws are not exchangeable), so ``c_i`` may only use draws made BEFORE it, or
  draws of other rows that are independent of this row's (:func:`earlier_draws_baseline`).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch


def _score_weight(probs: torch.Tensor) -> torch.Tensor:
    """``p / stopgrad(p)``: one in value, ``grad log p`` in gradient."""
    return probs / probs.detach()


def _expand(weights: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``weights`` with trailing unit dimensions, to multiply features shaped ``weights.shape + F``."""
    return weights.reshape(weights.shape + (1,) * (like.dim() - weights.dim()))


def _weighted_sum(weights: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """``sum_d w_d f_d`` over the last dimension of ``weights`` (features: ``weights.shape + F``)."""
    return (_expand(weights, features) * features).sum(dim=weights.dim() - 1)


# ----------------------------------------------------------------------------- weights
def count_weights(drawn: torch.Tensor, counts: torch.Tensor | float, total: torch.Tensor | float) -> torch.Tensor:
    """Weights ``(k / N) p / sg(p)`` of the distinct cells of ``N`` draws with replacement.

    ``drawn``: the probabilities of the cells drawn (any shape); ``counts``: how often each was
    drawn; ``total``: ``N`` (a number, or one per cell).
    """
    return _score_weight(drawn) * (counts / total)


def with_replacement_weights(drawn: torch.Tensor) -> torch.Tensor:
    """Weights ``(1/N) p / sg(p)`` of ``N`` i.i.d. draws (``drawn``: ``(..., N)``, duplicates kept)."""
    return count_weights(drawn, 1.0, drawn.shape[-1])


def without_replacement_weights(drawn: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Weights of ordered distinct draws (module docstring), ``(..., k)``.

    ``drawn``: the probabilities of the draws in draw order; ``valid``: which entries of each row
    are draws (a prefix of the row; default all), so rows with fewer draws can share a tensor. The
    weight of an entry that is not a draw is zero.
    """
    if valid is None:
        valid = torch.ones_like(drawn, dtype=torch.bool)
    kept = torch.where(valid, drawn, torch.zeros_like(drawn))
    safe = torch.where(valid, drawn, torch.ones_like(drawn))  # no 0/0 in the score of a non-draw
    mass_before = torch.cumsum(kept, dim=-1) - kept  # exclusive prefix sum S_{i-1}
    remaining = (1.0 - mass_before).detach().clamp_min(0.0)
    k = valid.sum(dim=-1, keepdim=True)
    later = k - 1 - torch.arange(drawn.shape[-1], device=drawn.device)  # brackets after draw i
    weights = (kept * later + remaining * _score_weight(safe)) / k.clamp_min(1)
    return torch.where(valid, weights, torch.zeros_like(weights))


# ----------------------------------------------------------------------------- estimates
def expectation_with_replacement(
    probs: torch.Tensor, indices: torch.Tensor, features: torch.Tensor
) -> torch.Tensor:
    """Estimate ``sum_i probs[i] * f_i`` from i.i.d. draws.

    ``probs``: ``(..., n)``; ``indices``: ``(..., N)`` draws; ``features``: ``(..., N, *F)``
    features of the drawn positions, in draw order. Returns ``(..., *F)``.
    """
    return _weighted_sum(with_replacement_weights(probs.gather(-1, indices)), features)


def expectation_without_replacement(
    probs: torch.Tensor, indices: torch.Tensor, features: torch.Tensor
) -> torch.Tensor:
    """Estimate ``sum_i probs[i] * f_i`` from ordered distinct draws (see module docstring).

    ``probs``: ``(..., n)``; ``indices``: ``(..., k)`` distinct draws in order; ``features``:
    ``(..., k, *F)``. Returns ``(..., *F)``.
    """
    return _weighted_sum(without_replacement_weights(probs.gather(-1, indices)), features)


def two_stage_expectation(
    tile_probs: torch.Tensor, tile_counts: torch.Tensor, tile_estimates: Mapping[int, torch.Tensor]
) -> torch.Tensor:
    """Combine per-tile inner estimates ``E_t`` of one image into ``Psi_hat``.

    ``tile_probs``: ``(n_tiles,)`` stage-1 attention; ``tile_counts``: ``(n_tiles,)`` multinomial
    counts of ``N`` draws; ``tile_estimates``: ``E_t`` for every tile with a positive count. (The
    batched model forms the same sum over all images at once from :func:`count_weights`.)
    """
    tiles = sorted(tile_estimates)
    index = torch.as_tensor(tiles, device=tile_probs.device)
    weights = count_weights(tile_probs[index], tile_counts[index].to(tile_probs.dtype), tile_counts.sum())
    return _weighted_sum(weights, torch.stack([tile_estimates[t] for t in tiles]))


# ----------------------------------------------------------------------------- control variates
def count_control_variate(
    drawn: torch.Tensor, counts: torch.Tensor | float, total: torch.Tensor | float, baseline: torch.Tensor
) -> torch.Tensor:
    """Zero-valued term that turns each cell's score part ``E grad log p`` into ``(E - c) grad log p``
    (draws with replacement; ``baseline``: ``drawn.shape + F``, e.g. :func:`leave_one_out_baseline`).

    Returns ``drawn.shape + F``: one term per cell, to be summed like the cells' weighted values.
    """
    coefficient = (counts / total) * (1.0 - _score_weight(drawn))
    return _expand(coefficient, baseline) * baseline.detach()


def without_replacement_control_variate(
    drawn: torch.Tensor, valid: torch.Tensor, baseline: torch.Tensor
) -> torch.Tensor:
    """Zero-valued term that puts a baseline into the score part of ordered distinct draws.

    For draw ``i`` with baseline ``c_i``: ``c_i [(1 - S_{i-1}) - sg(1 - S_{i-1}) p/sg(p)] / k``.
    Given the earlier draws its gradient averages to ``c_i [-grad S_{i-1} + grad S_{i-1}] = 0``:
    the mass left to draw from, and with it the baseline's share, moves with the earlier draws'
    probabilities, so the baseline is added back through ``1 - S_{i-1}`` itself. ``drawn``,
    ``valid``: ``(..., k)`` as for :func:`without_replacement_weights`; ``baseline``: ``(..., k, *F)``,
    independent of draw ``i`` given the draws before it (:func:`earlier_draws_baseline`).
    Returns ``(..., *F)``.
    """
    kept = torch.where(valid, drawn, torch.zeros_like(drawn))
    safe = torch.where(valid, drawn, torch.ones_like(drawn))
    left = 1.0 - (torch.cumsum(kept, dim=-1) - kept)  # 1 - S_{i-1}, live
    coefficient = (left - left.detach()) - left.detach().clamp_min(0.0) * (_score_weight(safe) - 1.0)
    coefficient = torch.where(valid, coefficient, torch.zeros_like(coefficient))
    k = valid.sum(dim=-1, keepdim=True).clamp_min(1)
    return _weighted_sum(coefficient / k, baseline.detach())


def leave_one_out_baseline(
    values: torch.Tensor, counts: torch.Tensor, groups: torch.Tensor, n_groups: int
) -> torch.Tensor:
    """For i.i.d. draws: the mean of the OTHER draws of the same group (detached; zero if none).

    ``values``: ``(M, *F)``, one per distinct cell; ``counts``: ``(M,)`` its number of draws;
    ``groups``: ``(M,)`` the group (image) of each cell, in ``range(n_groups)``.
    """
    values = values.detach()
    weights = counts.to(values.dtype)
    sums = values.new_zeros((n_groups,) + values.shape[1:]).index_add_(0, groups, _expand(weights, values) * values)
    totals = values.new_zeros(n_groups).index_add_(0, groups, weights)
    others = totals[groups] - 1.0
    mean = (sums[groups] - values) / _expand(others.clamp_min(1.0), values)
    return torch.where(_expand(others > 0, values), mean, 0.0)


def earlier_draws_baseline(
    values: torch.Tensor, valid: torch.Tensor, groups: torch.Tensor, n_groups: int
) -> torch.Tensor:
    """For ordered draws without replacement, one row per parent: the mean of every draw of the
    same group except this row's draws from this one on (detached; zero if there is none).

    ``values``: ``(R, k, *F)``; ``valid``: ``(R, k)``; ``groups``: ``(R,)`` in ``range(n_groups)``.
    Rows of one group (the drawn tiles of an image) are drawn independently given the parents,
    so another row's draws and this row's earlier draws are both independent of draw ``i``.
    With one row per group this is the mean of the row's earlier draws.
    """
    values = torch.where(_expand(valid, values), values.detach(), 0.0)
    counted = valid.to(values.dtype)
    before = torch.cumsum(values, dim=1) - values  # this row's draws before i
    count_before = torch.cumsum(counted, dim=1) - counted
    row_sums = values.sum(dim=1)
    group_sums = values.new_zeros((n_groups,) + row_sums.shape[1:]).index_add_(0, groups, row_sums)
    group_counts = counted.new_zeros(n_groups).index_add_(0, groups, counted.sum(dim=1))
    others = group_sums[groups] - row_sums  # the other rows of the group
    other_count = group_counts[groups] - counted.sum(dim=1)
    total = before + others.unsqueeze(1)
    count = count_before + other_count.unsqueeze(1)
    mean = total / _expand(count.clamp_min(1.0), total)
    return torch.where(_expand((count > 0) & valid, mean), mean, 0.0)
