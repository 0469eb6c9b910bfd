"""Drawing positions from an attention distribution.

* :func:`sample_with_replacement` -- i.i.d. multinomial draws (stage 1, ATS with replacement).
* :func:`gumbel_top_k` -- ``k`` distinct positions without replacement, in draw order, by adding
  Gumbel noise to the LOG-probabilities and keeping the ``k`` largest (Kool et al. 2019). Adding the
  noise to the probabilities themselves, as one public port does, samples the wrong distribution.
* :func:`top_k` -- the deterministic variant used for top-N inference.

Every random function takes an explicit :class:`torch.Generator`; nothing touches global RNG state.
"""

from __future__ import annotations

import torch


def _uniform(shape: torch.Size, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    device = generator.device if generator is not None else like.device
    u = torch.rand(shape, generator=generator, device=device, dtype=torch.float64)
    return u.to(like.device)


def gumbel_noise(shape: torch.Size, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standard Gumbel noise of ``shape`` on ``like``'s device (float64 for resolution in the tail)."""
    tiny = torch.finfo(torch.float64).tiny
    u = _uniform(shape, like, generator).clamp_(min=tiny, max=1.0 - 1e-16)
    return -torch.log(-torch.log(u))


def sample_with_replacement(
    probs: torch.Tensor, num: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``num`` i.i.d. indices from each row of ``probs`` (shape ``(..., n)``) -> ``(..., num)``."""
    if num < 1:
        raise ValueError(f"number of samples must be >= 1, got {num}")
    flat = probs.detach().reshape(-1, probs.shape[-1]).double()
    if generator is not None and generator.device != flat.device:
        flat = flat.to(generator.device)
    draws = torch.multinomial(flat, num, replacement=True, generator=generator)
    return draws.to(probs.device).reshape(*probs.shape[:-1], num)


def gumbel_top_k(
    log_probs: torch.Tensor, k: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``k`` distinct indices per row of ``log_probs`` (``(..., n)``), ordered as sequential draws.

    Positions with probability zero (log-prob ``-inf``) are drawn only once every positive one has
    been, so callers should keep ``k`` at most the number of positive entries.
    """
    n = log_probs.shape[-1]
    if not 1 <= k <= n:
        raise ValueError(f"cannot draw {k} distinct positions out of {n}")
    perturbed = log_probs.detach().double() + gumbel_noise(log_probs.shape, log_probs, generator)
    return torch.topk(perturbed, k, dim=-1, sorted=True).indices


def top_k(scores: torch.Tensor, k: int) -> torch.Tensor:
    """The ``k`` highest-scoring indices per row, highest first (deterministic inference)."""
    return torch.topk(scores.detach(), min(k, scores.shape[-1]), dim=-1, sorted=True).indices


def counts(indices: torch.Tensor, n: int, kept: torch.Tensor | None = None) -> torch.Tensor:
    """How often each of ``n`` positions occurs in each row of draws: ``(..., N)`` -> ``(..., n)``.

    ``kept`` (``(..., N)`` bool) counts only the draws it marks.
    """
    ones = torch.ones_like(indices) if kept is None else kept.long()
    return torch.zeros(indices.shape[:-1] + (n,), dtype=torch.long, device=indices.device).scatter_add_(
        -1, indices, ones
    )
