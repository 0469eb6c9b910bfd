"""How many draws N an image gets, and how many it got.

With ``n_rule: fixed`` every image gets ``n`` draws, the paper's N. With ``n_rule: perplexity``
(:class:`zoomin.models.params.ZoomInKParams`) each image gets

    N(a) = clip(round(c * exp(H(a))), n_min, n_max)

from its own stage-1 attention ``a``: ``exp(H(a))`` is the perplexity of ``a``, the number of tiles
it effectively spreads over (1 when all of it is on one tile, the number of tiles when it is flat),
so an image whose attention has settled on a few tiles gets few draws, and one whose attention is
still spread out gets more. ``c`` is the number of draws per effective tile.

Why the estimator stays unbiased (docs/method.md §15): N is a function of ``a`` alone, never of
what is drawn, and ``a`` is computed before any draw. Given ``a``, N is a constant and the N
draws are i.i.d. from ``a``, so every statement of §6 holds conditionally on ``a``, hence
unconditionally. N is piecewise constant in the attention's parameters (it is rounded), so the
expectation of the estimate equals Psi for every parameter value, and its gradient, taken with N
held fixed (``a`` is detached here), is the gradient of Psi. A rule that looked at the drawn
features (e.g. drawing until the estimate settles) would not have this property.

:func:`image_draws` reads back the N each image of a model output got (its stage-1 counts sum to
it): the evaluation's ``metrics.json`` and ``zoomin predict``'s ``predictions.csv`` report it.
"""

from __future__ import annotations

import torch

from zoomin.models.distributions import entropy
from zoomin.models.output import ModelOutput
from zoomin.models.params import ZoomInKParams


def perplexity_draws(a: torch.Tensor, per_perplexity: float, fewest: int, most: int) -> torch.Tensor:
    """``(B,)`` long: ``clip(round(per_perplexity * exp(H(a_b))), fewest, most)`` for each row of ``a``
    (``(B, tiles)``, zero on padding and background), detached."""
    perplexity = torch.exp(entropy(a.detach().double()))
    return torch.clamp(torch.round(per_perplexity * perplexity), fewest, most).long()


def draws_per_image(a: torch.Tensor, params: ZoomInKParams) -> int | torch.Tensor:
    """The N of each image of a batch whose stage-1 attention is ``a``: ``params.n`` for every image
    (``n_rule: fixed``), else one per image (:func:`perplexity_draws`)."""
    if params.n_rule == "fixed":
        return params.n
    return perplexity_draws(a, params.n_per_perplexity, params.n_min, params.n_max)


def image_draws(output: ModelOutput) -> list[int | None]:
    """The number of stage-1 draws N of each image of ``output`` (``None`` for an image whose model
    draws no counted stage: ATS, or a model without attention, which gives an empty list)."""
    return [None if attention.counts is None else int(attention.counts.sum()) for attention in output.attention]
