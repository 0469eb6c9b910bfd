"""Statistical tests: the Monte Carlo representation and its gradients are unbiased.

For a small image, the mean over many draws of ``Psi_hat`` (Zoom-In) or of the ATS estimate, and
of the autograd gradients of ``w . Psi_hat`` with respect to the feature net and each attention
net, must match the exact representation and its autograd gradient. Gradients are compared through
fixed random projections, so each parameter group is a handful of well-estimated numbers. The same
machinery must flag deliberately broken estimators, each broken in one place, as biased; with the
control variate on (``control_variate=True``), it must still be unbiased, and a baseline that
contains the draw it is the baseline of must be flagged.

The draws come in batches of ``COPIES`` copies of the image (one batched forward pass each); the
standard error of each quantity is estimated from the spread of the ``BATCHES`` batch means, so
each z-score ``(mean - exact) / SE`` follows a Student t distribution with ``BATCHES - 1`` degrees
of freedom when the estimator is unbiased (the batch means are near-normal: each averages
``COPIES`` independent draws). A test checks the largest of ``Q`` z-scores (the representation's
``D`` values and ``PROJECTIONS`` per parameter group), so its limit is the Bonferroni bound
``t_{BATCHES-1}(1 - FAMILY_ALPHA / 2Q)``: an unbiased estimator exceeds it with probability at most
``FAMILY_ALPHA`` (about 5.3 for Q = 84). The mutations are caught at several times that limit.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from zoomin import estimators
from zoomin.image_access import InMemoryImage
from zoomin.models.ats import ATSNet
from zoomin.models.params import ATSParams, ZoomInParams
from zoomin.models.zoomin_net import ZoomInNet

pytestmark = [pytest.mark.usefixtures("single_thread"), pytest.mark.slow]  # tiny nets: one thread is faster

BATCHES = 100  # independent batch means: the standard error's degrees of freedom + 1
COPIES = 40  # draws per batch (the image repeated in one batched forward pass)
PROJECTIONS = 12
FAMILY_ALPHA = 1e-4  # chance that an unbiased estimator fails one test


def z_limit(quantities: int) -> float:
    """Bonferroni limit on the largest of ``quantities`` |t|-scores with ``BATCHES - 1`` d.o.f."""
    return float(stats.t.ppf(1.0 - FAMILY_ALPHA / (2 * quantities), df=BATCHES - 1))


def structured_image(seed: int, size: int = 64) -> InMemoryImage:
    """Noise plus a few bright squares, so attention and features vary across the image."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 90, (size, size, 3)).astype(np.uint8)
    for _ in range(4):
        y, x = rng.integers(0, size - 10, 2)
        pixels[y : y + 10, x : x + 10] = rng.integers(150, 255, 3)
    return InMemoryImage(pixels)


def sharpen(attention_net: torch.nn.Module, factor: float) -> None:
    """Scale the last convolution so the attention is far from uniform (a harder test)."""
    with torch.no_grad():
        attention_net.layers[-1].weight.mul_(factor)


# Two settings per model. CONCENTRATED: sharp attention over few positions (16 per Zoom-In tile,
# 16 in the ATS view) and several draws per row, so the mass drawn before a draw, S_{i-1}, is large
# and a wrong remaining-mass term shows. FEW: two draws per image, so that a baseline holding its
# own draw holds half of it (the bias of that mistake falls like 1 / draws).
ZOOMIN_SETTINGS = {
    "concentrated": ({"tile": 16, "subtile": 5, "s1": 0.125, "s2": 0.25, "n": 12}, 16.0),
    "few": ({"tile": 16, "subtile": 5, "s1": 0.25, "s2": 0.5, "n": 2}, 4.0),
}
ATS_SETTINGS = {
    "concentrated": ({"scale": 0.0625, "patch": 5, "n": 8}, 8.0),
    "few": ({"scale": 0.125, "patch": 5, "n": 2}, 4.0),
}


def zoomin_model(setting: str = "concentrated", control_variate: bool = False):
    params, factor = ZOOMIN_SETTINGS[setting]
    torch.manual_seed(0)
    model = ZoomInNet(2, ZoomInParams(**params, control_variate=control_variate))
    sharpen(model.tile_attention, factor)
    sharpen(model.subtile_attention, factor)
    groups = {
        "features": model.features,
        "tile_attention": model.tile_attention,
        "subtile_attention": model.subtile_attention,
    }
    return model, groups, structured_image(0)


def ats_model(replace: bool, setting: str = "concentrated", control_variate: bool = False):
    params, factor = ATS_SETTINGS[setting]
    torch.manual_seed(1)
    model = ATSNet(2, ATSParams(**params, replace=replace, control_variate=control_variate))
    sharpen(model.attention, factor)
    return model, {"features": model.features, "attention": model.attention}, structured_image(1)


def flat_grad(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat(
        [(torch.zeros_like(p) if p.grad is None else p.grad).reshape(-1) for p in module.parameters()]
    )


def bias_z_scores(model, groups: dict[str, torch.nn.Module], image, seed: int = 0) -> dict[str, torch.Tensor]:
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
    samples = [measure(model.represent([image] * COPIES, generator).features) for _ in range(BATCHES)]
    scores = {}
    for name, truth in exact.items():
        stacked = torch.stack([s[name] for s in samples])
        se = stacked.std(dim=0) / BATCHES**0.5
        floor = 1e-6 + 1e-5 * truth.abs()  # float32 round-off
        scores[name] = (stacked.mean(dim=0) - truth) / torch.sqrt(se**2 + floor**2)
    return scores


def assert_unbiased(scores: dict[str, torch.Tensor]) -> None:
    limit = z_limit(sum(z.numel() for z in scores.values()))
    worst = {name: float(z.abs().max()) for name, z in scores.items()}
    assert all(value < limit for value in worst.values()), (limit, worst)


def assert_flagged(scores: dict[str, torch.Tensor], group: str) -> None:
    """The broken estimator must fail :func:`assert_unbiased`, through ``group``."""
    with pytest.raises(AssertionError):
        assert_unbiased(scores)
    assert scores[group].abs().max() > z_limit(sum(z.numel() for z in scores.values()))


# ----------------------------------------------------------------------------- broken on purpose
def _without_replacement(drawn, valid, inclusive: bool = False, stop_gradient: bool = True):
    """The weights of :func:`zoomin.estimators.without_replacement_weights`, optionally broken."""
    valid = torch.ones_like(drawn, dtype=torch.bool) if valid is None else valid
    kept = torch.where(valid, drawn, torch.zeros_like(drawn))
    safe = torch.where(valid, drawn, torch.ones_like(drawn))
    mass = torch.cumsum(kept, dim=-1) - (0 if inclusive else kept)
    remaining = (1.0 - mass).clamp_min(0.0)
    remaining = remaining.detach() if stop_gradient else remaining
    k = valid.sum(dim=-1, keepdim=True)
    later = k - 1 - torch.arange(drawn.shape[-1])
    weights = (kept * later + remaining * safe / safe.detach()) / k.clamp_min(1)
    return torch.where(valid, weights, torch.zeros_like(weights))


def inclusive_mass_weights(drawn, valid=None):
    """BROKEN: the remaining mass uses an inclusive prefix sum (1 - S_i, not 1 - S_{i-1})."""
    return _without_replacement(drawn, valid, inclusive=True)


def live_mass_weights(drawn, valid=None):
    """BROKEN: no stop-gradient on the remaining mass 1 - S_{i-1}."""
    return _without_replacement(drawn, valid, stop_gradient=False)


def no_score_weight(probs):
    """BROKEN: drops the score-function correction everywhere (no gradient through any draw)."""
    return torch.ones_like(probs)


def no_stage1_score(drawn, counts, total):
    """BROKEN: stage-1 (tile) weights without the score-function correction, k/N only."""
    return torch.ones_like(drawn) * (counts / total)


def self_inclusive_leave_one_out(values, counts, groups, n_groups):
    """BROKEN: the baseline of a draw is the mean of ALL draws of its group, itself included."""
    values = values.detach()
    weights = counts.to(values.dtype)
    sums = values.new_zeros((n_groups, values.shape[1])).index_add_(0, groups, weights[:, None] * values)
    totals = values.new_zeros(n_groups).index_add_(0, groups, weights)
    return (sums / totals[:, None])[groups]


def self_inclusive_earlier_draws(values, valid, groups, n_groups):
    """BROKEN: the baseline of draw i includes draw i itself (an inclusive prefix)."""
    values = torch.where(valid[..., None], values.detach(), 0.0)
    counted = valid.to(values.dtype)
    row_sums, row_counts = values.sum(dim=1), counted.sum(dim=1)
    group_sums = values.new_zeros((n_groups, values.shape[2])).index_add_(0, groups, row_sums)
    group_counts = counted.new_zeros(n_groups).index_add_(0, groups, row_counts)
    total = torch.cumsum(values, dim=1) + (group_sums[groups] - row_sums)[:, None]
    count = torch.cumsum(counted, dim=1) + (group_counts[groups] - row_counts)[:, None]
    return torch.where(valid[..., None], total / count.clamp_min(1.0)[..., None], 0.0)


# ----------------------------------------------------------------------------- unbiased
@pytest.mark.parametrize(
    ("setting", "control_variate"), [("concentrated", False), ("concentrated", True), ("few", True)]
)
def test_zoomin_value_and_gradients_unbiased(setting, control_variate):
    assert_unbiased(bias_z_scores(*zoomin_model(setting, control_variate)))


@pytest.mark.parametrize(
    ("setting", "control_variate"), [("concentrated", False), ("concentrated", True), ("few", True)]
)
@pytest.mark.parametrize("replace", [False, True])
def test_ats_value_and_gradients_unbiased(replace, setting, control_variate):
    assert_unbiased(bias_z_scores(*ats_model(replace, setting, control_variate)))


# ----------------------------------------------------------------------------- mutations caught
@pytest.mark.parametrize(
    ("broken", "target", "group"),
    [
        (inclusive_mass_weights, "without_replacement_weights", "psi"),
        (live_mass_weights, "without_replacement_weights", "subtile_attention"),
        (no_stage1_score, "count_weights", "tile_attention"),
    ],
)
def test_check_flags_broken_zoomin_estimators(monkeypatch, broken, target, group):
    monkeypatch.setattr(estimators, target, broken)
    assert_flagged(bias_z_scores(*zoomin_model()), group)


def test_check_flags_zoomin_missing_score_correction(monkeypatch):
    monkeypatch.setattr(estimators, "_score_weight", no_score_weight)
    scores = bias_z_scores(*zoomin_model())
    assert_flagged(scores, "tile_attention")
    assert_flagged(scores, "subtile_attention")


@pytest.mark.parametrize(
    ("broken", "target", "replace", "group"),
    [
        (inclusive_mass_weights, "without_replacement_weights", False, "psi"),
        (live_mass_weights, "without_replacement_weights", False, "attention"),
        (no_score_weight, "_score_weight", True, "attention"),
    ],
)
def test_check_flags_broken_ats_estimators(monkeypatch, broken, target, replace, group):
    monkeypatch.setattr(estimators, target, broken)
    assert_flagged(bias_z_scores(*ats_model(replace)), group)


@pytest.mark.parametrize(
    ("broken", "target", "group"),
    [
        (self_inclusive_leave_one_out, "leave_one_out_baseline", "tile_attention"),
        (self_inclusive_earlier_draws, "earlier_draws_baseline", "subtile_attention"),
    ],
)
def test_check_flags_zoomin_baselines_that_contain_their_draw(monkeypatch, broken, target, group):
    monkeypatch.setattr(estimators, target, broken)
    assert_flagged(bias_z_scores(*zoomin_model("few", control_variate=True)), group)


@pytest.mark.parametrize(
    ("broken", "target", "replace"),
    [
        (self_inclusive_leave_one_out, "leave_one_out_baseline", True),
        (self_inclusive_earlier_draws, "earlier_draws_baseline", False),
    ],
)
def test_check_flags_ats_baselines_that_contain_their_draw(monkeypatch, broken, target, replace):
    monkeypatch.setattr(estimators, target, broken)
    assert_flagged(bias_z_scores(*ats_model(replace, "few", control_variate=True)), "attention")
