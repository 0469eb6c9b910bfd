"""The sampling stages of the attention-sampling models, batched over the rows of a distribution.

A stage takes a batch of distributions, one row per parent (an image for Zoom-In's stage 1 and
for ATS; a drawn tile for Zoom-In's stage 2), and how many draws each row gets. It returns what
was drawn and each draw's estimator weight (:mod:`zoomin.estimators`), live in the autograd graph.
Stages compose: the rows of a stage are the cells drawn by the stage before, with their counts as
the number of draws, and a draw's weight in the final estimate is the product of its weights along
the way. The estimate of a batch is then one segment sum, ``Psi_b = sum_{draws d of b} W_d f_d``.

* :func:`draw_counts` and :func:`counted_cells` (-> :class:`CountDraws`) -- with replacement:
  ``N`` i.i.d. draws per row, kept as the counts ``k`` of the distinct cells drawn, each with weight
  ``(k/N) q/sg(q)``. Zoom-In's tiles; every stage but the last of the K-stage model
  (:mod:`zoomin.models.zoomin_k`), whose inner rows draw their parent's count ``k`` each, and an
  image whose N comes from its attention (:mod:`zoomin.models.adaptive_draws`): ``N`` may differ
  from row to row.
* :func:`draw_positions` (-> :class:`PositionDraws`) -- without replacement: ``min(k, positive
  cells)`` distinct positions per row in draw order (Gumbel-top-k on ``log q``), with the ATS-style
  weights. Zoom-In's sub-tiles inside each drawn tile; ATS's patches. Its rows may be drawn in
  chunks (:func:`concatenate_positions`) with the same random numbers as one call.
* :func:`draw_iid` (-> :class:`PositionDraws`) -- ``N`` i.i.d. positions per row, duplicates kept,
  weights ``(1/N) q/sg(q)``. ATS with ``replace=True``.

``sampling="topk"`` replaces each random draw by its deterministic counterpart (largest-remainder
counts; the positions of highest probability) and keeps the same weights.

Every random number comes from the one ``generator``, in a fixed order: a stage draws all its rows
in one call, so the same generator gives the same draws whether a batch's later work is done at
once or in chunks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from zoomin import estimators
from zoomin import sampling as samplers
from zoomin.models.distributions import largest_remainder_counts


@dataclass
class CountDraws:
    """Draws with replacement of a batch of rows, as the distinct ``(row, cell)`` pairs drawn
    (``M`` of them, ordered by row, then cell)."""

    counts: torch.Tensor  # (R, n) how often each cell of each row was drawn
    row: torch.Tensor  # (M,)
    cell: torch.Tensor  # (M,)
    count: torch.Tensor  # (M,) k, at least 1
    drawn: torch.Tensor  # (M,) the probability of the cell (live)
    weight: torch.Tensor  # (M,) (k/N) q/sg(q)

    @property
    def total(self) -> torch.Tensor:
        """``(M,)``: the number of draws ``N`` of each pair's row."""
        return self.counts.sum(dim=-1)[self.row]


@dataclass
class PositionDraws:
    """Positions drawn in each row, in draw order, padded to a common width ``w``."""

    positions: torch.Tensor  # (R, w) long; only the valid entries mean anything
    valid: torch.Tensor  # (R, w) bool: a prefix of each row
    drawn: torch.Tensor  # (R, w) the probability of each position (live; 0 where not valid)
    weight: torch.Tensor  # (R, w) estimator weight (0 where not valid)
    replacement: bool  # i.i.d. draws (draw_iid) rather than distinct ones in order


def draw_counts(
    probs: torch.Tensor, total: int | torch.Tensor, sampling: str, generator: torch.Generator | None
) -> torch.Tensor:
    """``(..., n)`` counts of ``total`` draws with replacement from each row of ``probs``
    (largest-remainder rounding of ``total * probs`` for ``sampling="topk"``).

    ``total`` is one number for every row, or a tensor of one per row (``(R,)``, each at least 1):
    the draws of a K-stage model's inner stage (each drawn region's count) and of an image whose N
    comes from its attention. Every row then draws ``max(total)`` times in one call and only its
    first ``total[r]`` draws are counted: the first ``k`` of i.i.d. draws are ``k`` i.i.d. draws, and
    with equal totals the counts are exactly those of the single-number call."""
    if sampling == "topk":
        return largest_remainder_counts(probs, total).to(probs.device)
    if not isinstance(total, torch.Tensor):
        return samplers.counts(samplers.sample_with_replacement(probs, total, generator), probs.shape[-1])
    totals = total.to(probs.device)
    draws = samplers.sample_with_replacement(probs, int(totals.max()), generator)
    kept = torch.arange(draws.shape[-1], device=draws.device) < totals.unsqueeze(-1)
    return samplers.counts(draws, probs.shape[-1], kept)


def counted_cells(probs: torch.Tensor, counts: torch.Tensor) -> CountDraws:
    """The distinct cells of ``counts`` (``(R, n)``, from :func:`draw_counts` on ``probs``) and
    their estimator weights."""
    row, cell = counts.nonzero(as_tuple=True)
    count = counts[row, cell]
    drawn = probs[row, cell]
    total = counts.sum(dim=-1)[row].to(drawn.dtype)
    weight = estimators.count_weights(drawn, count.to(drawn.dtype), total)
    return CountDraws(counts, row, cell, count, drawn, weight)


def draw_positions(
    probs: torch.Tensor,
    wanted: torch.Tensor,
    sampling: str,
    generator: torch.Generator | None,
    width: int | None = None,
) -> PositionDraws:
    """``min(wanted[r], positive cells of row r)`` distinct positions of each row of ``probs``
    (``(R, n)``), in draw order (Gumbel-top-k; the highest for ``sampling="topk"``).

    ``width`` (default: the most any row wants, at most ``n``) is the number of positions ranked per
    row. Rows drawn in consecutive chunks with the width of the whole batch take the same random
    numbers in the same order as one call over all rows (the noise is drawn row after row), so a
    model may draw its rows chunk by chunk at inference and keep only the draws."""
    log_probs = torch.log(probs)
    available = (probs > 0).sum(dim=-1)
    if width is None:
        width = max(1, min(int(wanted.max()) if wanted.numel() else 1, probs.shape[-1]))
    if sampling == "topk":
        positions = samplers.top_k(log_probs, width)
    else:
        positions = samplers.gumbel_top_k(log_probs, width, generator)
    taken = torch.minimum(wanted.to(available.device), available)
    valid = torch.arange(width, device=probs.device) < taken.unsqueeze(-1)
    drawn = probs.gather(-1, positions)
    weight = estimators.without_replacement_weights(drawn, valid)
    return PositionDraws(positions, valid, torch.where(valid, drawn, 0.0), weight, replacement=False)


def concatenate_positions(parts: list[PositionDraws]) -> PositionDraws:
    """The rows of several :class:`PositionDraws` of the same width, in order, as one."""
    if len(parts) == 1:
        return parts[0]
    return PositionDraws(
        torch.cat([part.positions for part in parts]),
        torch.cat([part.valid for part in parts]),
        torch.cat([part.drawn for part in parts]),
        torch.cat([part.weight for part in parts]),
        replacement=parts[0].replacement,
    )


def draw_iid(probs: torch.Tensor, total: int, generator: torch.Generator | None) -> PositionDraws:
    """``total`` i.i.d. positions of each row of ``probs`` (``(R, n)``), duplicates kept."""
    positions = samplers.sample_with_replacement(probs, total, generator)
    drawn = probs.gather(-1, positions)
    valid = torch.ones_like(positions, dtype=torch.bool)
    return PositionDraws(positions, valid, drawn, estimators.with_replacement_weights(drawn), replacement=True)


def scatter_draws(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``(R, w, *F)``: ``values`` (``(K, *F)``, one per valid draw, in row-major order) at their
    draws' places, zero elsewhere (differentiable)."""
    rows, width = valid.shape
    flat = values.new_zeros((rows * width,) + values.shape[1:])
    flat = flat.index_copy(0, valid.reshape(-1).nonzero()[:, 0], values)
    return flat.reshape((rows, width) + values.shape[1:])


def position_estimate(
    drawn: PositionDraws, features: torch.Tensor, groups: torch.Tensor, n_groups: int, control_variate: bool
) -> torch.Tensor:
    """``(R, D)``: each row's estimate ``sum_i w_i f_i`` from its draws' features (``(R, w, D)``,
    :func:`scatter_draws`), plus, with ``control_variate``, the zero-valued baseline term of
    :mod:`zoomin.estimators` (the other draws for i.i.d. draws; for ordered distinct draws the
    earlier ones and those of the other rows of the row's group ``groups[r]``)."""
    estimate = (drawn.weight.unsqueeze(-1) * features).sum(dim=1)
    if not control_variate:
        return estimate
    if drawn.replacement:
        rows, width = drawn.valid.shape
        flat_groups = torch.arange(rows, device=features.device).repeat_interleave(width)
        baseline = estimators.leave_one_out_baseline(
            features.reshape((rows * width,) + features.shape[2:]),
            torch.ones(rows * width, device=features.device),
            flat_groups,
            rows,
        ).reshape(features.shape)
        term = estimators.count_control_variate(drawn.drawn, 1.0, width, baseline).sum(dim=1)
    else:
        baseline = estimators.earlier_draws_baseline(features, drawn.valid, groups, n_groups)
        term = estimators.without_replacement_control_variate(drawn.drawn, drawn.valid, baseline)
    return estimate + term


def counted_estimate(
    cells: CountDraws, inner: torch.Tensor, n_groups: int, control_variate: bool
) -> torch.Tensor:
    """``(n_groups, D)``: ``sum_{cells of row b} (k/N) q/sg(q) inner_cell`` per row ``b`` (``inner``:
    ``(M, D)``, one per cell), plus, with ``control_variate``, the zero-valued leave-one-out
    baseline term of the score part (:func:`zoomin.estimators.count_control_variate`)."""
    terms = cells.weight.unsqueeze(-1) * inner
    if control_variate:
        baseline = estimators.leave_one_out_baseline(inner, cells.count, cells.row, n_groups)
        terms = terms + estimators.count_control_variate(
            cells.drawn, cells.count.to(inner.dtype), cells.total.to(inner.dtype), baseline
        )
    return inner.new_zeros((n_groups,) + inner.shape[1:]).index_add(0, cells.row, terms)
