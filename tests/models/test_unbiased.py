"""Statistical tests: the Monte Carlo representation and its gradients are unbiased.

For a small image, the mean over many draws of ``Psi_hat`` (Zoom-In) or of the ATS estimate, and
of the autograd gradients of ``w . Psi_hat`` with respect to the feature net and each attention
net, must match the exact representation and its autograd gradient within a few standard errors.
Gradients are compared through fixed random projections, so each parameter group is a handful of
well-estimated numbers. The same machinery must flag deliberately broken estimators as biased.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zoomin import estimators
from zoomin.image_access import InMemoryImage
from zoomin.models.ats import ATSNet
from zoomin.models.params import ATSParams, ZoomInParams
from zoomin.models.zoomin_net import ZoomInNet

pytestmark = pytest.mark.usefixtures("single_thread")  # tiny nets: one thread is faster

# (independent batches whose spread gives the standard error, draws per batch: the image repeated)
ZOOMIN_DRAWS = (24, 25)
ATS_DRAWS = (24, 25)
PROJECTIONS = 12
Z_LIMIT = 5.0


def structured_image(seed: int, size: int = 64) -> InMemoryImage:
    """Noise plus a few bright squares, so attention and features vary across the image."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 90, (size, size, 3)).astype(np.uint8)
    for _ in range(4):
        y, x = rng.integers(0, size - 10, 2)
        pixels[y : y + 10, x : x + 10] = rng.integers(150, 255, 3)
    return InMemoryImage(pixels)


def sharpen(attention_net: torch.nn.Module, factor: float = 4.0) -> None:
    """Scale the last convolution so the attention is far from uniform (a harder test)."""
    with torch.no_grad():
        attention_net.layers[-1].weight.mul_(factor)


def zoomin_model() -> tuple[ZoomInNet, dict[str, torch.nn.Module]]:
    torch.manual_seed(0)
    model = ZoomInNet(2, ZoomInParams(tile=16, subtile=5, s1=0.25, s2=0.5, n=6))
    sharpen(model.tile_attention)
    sharpen(model.subtile_attention)
    return model, {
        "features": model.features,
        "tile_attention": model.tile_attention,
        "subtile_attention": model.subtile_attention,
    }


def ats_model(replace: bool) -> tuple[ATSNet, dict[str, torch.nn.Module]]:
    torch.manual_seed(1)
    model = ATSNet(2, ATSParams(scale=0.125, patch=5, n=6, replace=replace))
    sharpen(model.attention)
    return model, {"features": model.features, "attention": model.attention}


def flat_grad(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat(
        [(torch.zeros_like(p) if p.grad is None else p.grad).reshape(-1) for p in module.parameters()]
    )


def bias_z_scores(
    model, groups: dict[str, torch.nn.Module], image, draws: tuple[int, int], seed: int = 0
) -> dict[str, torch.Tensor]:
    """``(MC mean - exact) / SE`` for Psi and for projected gradients of each parameter group."""
    projector = torch.Generator().manual_seed(123)
    weights = torch.randn(model.features.out_dim, generator=projector)
    directions = {
        name: torch.randn(
            PROJECTIONS, sum(p.numel() for p in net.parameters()), generator=projector
        )
        for name, net in groups.items()
    }

    def measure(representation: torch.Tensor) -> dict[str, torch.Tensor]:
        model.zero_grad()
        (representation @ weights).mean().backward()
        values = {name: directions[name] @ flat_grad(net) for name, net in groups.items()}
        values["psi"] = representation.detach().mean(dim=0).reshape(-1)
        return values

    exact = measure(model.exact_representation(image)[None])
    generator = torch.Generator().manual_seed(seed)
    batches, copies = draws
    samples = [measure(model.represent([image] * copies, generator).features) for _ in range(batches)]
    scores = {}
    for name, truth in exact.items():
        stacked = torch.stack([s[name] for s in samples])
        se = stacked.std(dim=0) / batches**0.5
        floor = 1e-6 + 1e-5 * truth.abs()  # float32 round-off
        scores[name] = (stacked.mean(dim=0) - truth) / torch.sqrt(se**2 + floor**2)
    return scores


def assert_unbiased(scores: dict[str, torch.Tensor]) -> None:
    worst = {name: float(z.abs().max()) for name, z in scores.items()}
    assert all(value < Z_LIMIT for value in worst.values()), worst


def inclusive_mass_estimator(probs, indices, features):
    """BROKEN on purpose: the remaining mass uses an inclusive prefix sum (1 - S_i, not 1 - S_{i-1})."""
    drawn = probs[indices]
    remaining = (1.0 - torch.cumsum(drawn, dim=0)).detach().clamp_min(0.0)
    weighted = drawn[:, None] * features
    exact_part = torch.cumsum(weighted, dim=0) - weighted
    return (exact_part + (remaining * drawn / drawn.detach())[:, None] * features).mean(dim=0)


def no_score_weight(probs):
    """BROKEN on purpose: drops the score-function correction (no gradient through the draw)."""
    return torch.ones_like(probs)


def assert_flagged(scores: dict[str, torch.Tensor], group: str) -> None:
    """The broken estimator must fail :func:`assert_unbiased`, through ``group``."""
    with pytest.raises(AssertionError):
        assert_unbiased(scores)
    assert scores[group].abs().max() > Z_LIMIT


def test_zoomin_value_and_gradients_unbiased():
    model, groups = zoomin_model()
    assert_unbiased(bias_z_scores(model, groups, structured_image(0), ZOOMIN_DRAWS))


@pytest.mark.parametrize("replace", [False, True])
def test_ats_value_and_gradients_unbiased(replace):
    model, groups = ats_model(replace)
    assert_unbiased(bias_z_scores(model, groups, structured_image(1), ATS_DRAWS))


def test_check_flags_zoomin_inclusive_prefix_sum(monkeypatch):
    monkeypatch.setattr(estimators, "expectation_without_replacement", inclusive_mass_estimator)
    model, groups = zoomin_model()
    assert_flagged(bias_z_scores(model, groups, structured_image(0), ZOOMIN_DRAWS), "psi")


def test_check_flags_zoomin_missing_score_correction(monkeypatch):
    monkeypatch.setattr(estimators, "_score_weight", no_score_weight)
    model, groups = zoomin_model()
    scores = bias_z_scores(model, groups, structured_image(0), ZOOMIN_DRAWS)
    assert_flagged(scores, "tile_attention")
    assert_flagged(scores, "subtile_attention")


def test_check_flags_ats_inclusive_prefix_sum(monkeypatch):
    monkeypatch.setattr(estimators, "expectation_without_replacement", inclusive_mass_estimator)
    model, groups = ats_model(replace=False)
    assert_flagged(bias_z_scores(model, groups, structured_image(1), ATS_DRAWS), "psi")


def test_check_flags_ats_missing_score_correction(monkeypatch):
    monkeypatch.setattr(estimators, "_score_weight", no_score_weight)
    model, groups = ats_model(replace=True)
    assert_flagged(bias_z_scores(model, groups, structured_image(1), ATS_DRAWS), "attention")
