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

The two public ports differ, and neither is used: the JAX reference (and the ZoomMIL port) keeps
only the diagonal of the Jacobian, ``E[g_{.j} . f_{.j}(s + sigma Z) Z_j] / sigma``, which is not
the gradient of ``F``; the DPS port takes the full Jacobian and multiplies it by ``k``.
tests/models/test_topk.py checks the estimator here against finite differences of ``F`` and shows that
both others fail that check.

The backward is looked up on this module at call time (:data:`score_gradient`), so tests can
substitute a deliberately wrong one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


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


score_gradient: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, float], torch.Tensor] = full_jacobian_vjp


class _PerturbedTopK(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, scores: torch.Tensor, noise: torch.Tensor, sigma: float, k: int) -> torch.Tensor:
        positions = topk_positions(scores.detach()[None] + sigma * noise, k)
        ctx.save_for_backward(positions, noise)
        ctx.sigma = sigma
        return soft_indicators(positions, scores.shape[-1], scores.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None, None]:
        positions, noise = ctx.saved_tensors
        return score_gradient(grad, positions, noise, ctx.sigma).to(grad.dtype), None, None, None


def perturbed_topk(scores: torch.Tensor, k: int, sigma: float, noise: torch.Tensor) -> torch.Tensor:
    """Soft top-``k`` indicators ``(k, n)`` of ``scores`` (``(n,)``) under ``noise`` (``(S, n)``, standard
    normal), differentiable in ``scores``; see the module docstring."""
    if scores.dim() != 1 or noise.dim() != 2 or noise.shape[1] != scores.shape[0]:
        raise ValueError(f"need scores (n,) and noise (S, n), got {tuple(scores.shape)} and {tuple(noise.shape)}")
    if not 1 <= k <= scores.shape[0]:
        raise ValueError(f"cannot select {k} of {scores.shape[0]} positions")
    if noise.shape[0] < 2 or sigma <= 0:
        raise ValueError(f"need at least 2 noise samples and sigma > 0, got {noise.shape[0]} and {sigma}")
    return _PerturbedTopK.apply(scores, noise.to(scores), float(sigma), int(k))


def standard_noise(
    samples: int, n: int, like: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``(samples, n)`` standard normal draws from ``generator`` on ``like``'s device and dtype."""
    device = generator.device if generator is not None else like.device
    return torch.randn((samples, n), generator=generator, device=device).to(like)
