"""The perturbed top-k operator (Berthet et al. 2020) that Cordonnier et al. (2021) select patches with.

For scores ``s`` (``n`` positions), ``k`` and noise ``Z`` (``S x n`` standard normal draws), the
forward pass is the Monte Carlo estimate of ``F(s) = E[f(s + sigma Z)]``, where ``f`` gives the
``k x n`` one-hot indicators of the ``k`` largest entries, ordered by position (the reference's
``sort_by=position``, so the ``i``-th indicator of every draw points at the ``i``-th selected
position from the top-left and their average stays spiky). The output is ``k`` soft indicator
vectors over the positions, each summing to 1.

The backward pass uses the gradient of that expectation (Berthet et al., Prop. 3.1),
``dF/ds = E[f(s + sigma Z) Z^T] / sigma``: for an upstream gradient ``g`` (``k x n``) the score
gradient is ``E[<g, f(s + sigma Z)> Z] / sigma``, the FULL Jacobian. :func:`full_jacobian_vjp`
estimates it from the same ``S`` draws as the forward pass, with the draws' mean of ``<g, f>``
subtracted as a control variate (``E[Z] = 0``, and dividing by ``S - 1`` instead of ``S`` keeps it
exactly unbiased): without it every position, selected or not, gets noise of size
``|<g, F>| / (sigma sqrt(S))``.

The public ports differ. The JAX reference (and the ZoomMIL port) keeps only the diagonal of the
Jacobian, ``E[g_{.j} . f_{.j}(s + sigma Z) Z_j] / sigma`` (no control variate), which is not the
gradient of ``F`` but is the operator Cordonnier et al. trained with: it is available as
``backward="diagonal"`` (:func:`diagonal_vjp`; ``TopKParams.backward``), the exact one is the
default. The DPS port takes the full Jacobian and multiplies it by ``k``; it is not offered.
tests/models/test_topk.py checks the exact estimator against finite differences of ``F`` and shows
that both others fail that check, and that the diagonal one is the diagonal of the same draws'
Jacobian.

The exact backward is looked up on this module at call time (:data:`score_gradient`), so tests can
substitute a deliberately wrong one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from zoomin.models.params import TOPK_BACKWARDS


def topk_positions(perturbed: torch.Tensor, k: int) -> torch.Tensor:
    """``(S, k)`` positions of the ``k`` largest entries of each row of ``perturbed``, ascending."""
    return torch.topk(perturbed, k, dim=-1, sorted=False).indices.sort(dim=-1).values


def soft_indicators(positions: torch.Tensor, n: int, dtype: torch.dtype) -> torch.Tensor:
    """The mean over draws of the one-hot indicators of ``positions`` (``(S, k)``): ``(k, n)``."""
    draws, k = positions.shape
    out = torch.zeros((k, n), dtype=dtype, device=positions.device)
    return out.scatter_add_(1, positions.T, torch.full((k, draws), 1.0 / draws, dtype=dtype, device=positions.device))


def full_jacobian_vjp(grad: torch.Tensor, positions: torch.Tensor, noise: torch.Tensor, sigma: float) -> torch.Tensor:
    """``E[<g, f(s + sigma Z)> Z] / sigma`` over the draws, with the mean of ``<g, f>`` as control variate."""
    value = grad.gather(1, positions.T).sum(dim=0)  # <g, f> of each draw: (S,)
    centred = value - value.mean()
    return centred.to(noise.dtype) @ noise / ((noise.shape[0] - 1) * sigma)


def diagonal_vjp(grad: torch.Tensor, positions: torch.Tensor, noise: torch.Tensor, sigma: float) -> torch.Tensor:
    """``E[g_{.j} . f_{.j}(s + sigma Z) Z_j] / sigma`` over the draws: the diagonal of the Jacobian only
    (the JAX reference's backward). Each draw's ``i``-th indicator points at ``positions[s, i]``, so
    draw ``s`` adds ``g[i, p] Z[s, p]`` to position ``p = positions[s, i]`` for every ``i``."""
    picked = grad.gather(1, positions.T).T.to(noise.dtype)  # (S, k): g[i, positions[s, i]]
    terms = picked * noise.gather(1, positions)  # (S, k): times Z[s, positions[s, i]]
    out = torch.zeros(noise.shape[1], dtype=noise.dtype, device=noise.device)
    return out.scatter_add_(0, positions.reshape(-1), terms.reshape(-1)) / (noise.shape[0] * sigma)


score_gradient: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, float], torch.Tensor] = full_jacobian_vjp

BACKWARDS = TOPK_BACKWARDS


def _backward(name: str) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor, float], torch.Tensor]:
    # looked up at call time, so a test's substitute for score_gradient is used
    return score_gradient if name == "exact" else diagonal_vjp


class _PerturbedTopK(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, scores: torch.Tensor, noise: torch.Tensor, sigma: float, k: int, backward: str
    ) -> torch.Tensor:
        positions = topk_positions(scores.detach()[None] + sigma * noise, k)
        ctx.save_for_backward(positions, noise)
        ctx.sigma = sigma
        ctx.backward_name = backward
        return soft_indicators(positions, scores.shape[-1], scores.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None, None, None]:
        positions, noise = ctx.saved_tensors
        gradient = _backward(ctx.backward_name)(grad, positions, noise, ctx.sigma)
        return gradient.to(grad.dtype), None, None, None, None


def perturbed_topk(
    scores: torch.Tensor, k: int, sigma: float, noise: torch.Tensor, backward: str = "exact"
) -> torch.Tensor:
    """Soft top-``k`` indicators ``(k, n)`` of ``scores`` (``(n,)``) under ``noise`` (``(S, n)``, standard
    normal), differentiable in ``scores``: ``backward`` ``"exact"`` (the Jacobian of the expectation)
    or ``"diagonal"`` (its diagonal, as the reference); see the module docstring."""
    if backward not in BACKWARDS:
        raise ValueError(f"backward must be one of {BACKWARDS}, got {backward!r}")
    if scores.dim() != 1 or noise.dim() != 2 or noise.shape[1] != scores.shape[0]:
        raise ValueError(f"need scores (n,) and noise (S, n), got {tuple(scores.shape)} and {tuple(noise.shape)}")
    if not 1 <= k <= scores.shape[0]:
        raise ValueError(f"cannot select {k} of {scores.shape[0]} positions")
    if noise.shape[0] < 2 or sigma <= 0:
        raise ValueError(f"need at least 2 noise samples and sigma > 0, got {noise.shape[0]} and {sigma}")
    return _PerturbedTopK.apply(scores, noise.to(scores), float(sigma), int(k), backward)


def standard_noise(
    samples: int, n: int, like: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``(samples, n)`` standard normal draws from ``generator`` on ``like``'s device and dtype."""
    device = generator.device if generator is not None else like.device
    return torch.randn((samples, n), generator=generator, device=device).to(like)
