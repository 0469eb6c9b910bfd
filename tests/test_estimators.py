"""Unbiasedness of the samplers and single-stage estimators (values and gradients).

Each check compares a Monte Carlo mean with the exact quantity, with a tolerance of a few standard
errors, and is shown to FAIL on a deliberately broken estimator.
"""

import numpy as np
import pytest
import torch
from scipy import stats

from zoomin.estimators import (
    expectation_with_replacement,
    expectation_without_replacement,
    two_stage_expectation,
)
from zoomin.sampling import counts, gumbel_top_k, sample_with_replacement, top_k

DRAWS = 3000


def _problem(n=6, d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, generator=g, dtype=torch.float64)
    feats = torch.randn(n, d, generator=g, dtype=torch.float64)
    weights = torch.randn(d, generator=g, dtype=torch.float64)
    return logits, feats, weights


def _exact(logits, feats, weights):
    logits = logits.clone().requires_grad_(True)
    feats = feats.clone().requires_grad_(True)
    value = torch.softmax(logits, 0) @ feats
    (weights @ value).backward()
    return value.detach(), logits.grad, feats.grad


def _monte_carlo(estimate_fn, logits, feats, weights, draws=DRAWS, seed=1):
    """Per-draw value and gradients of ``weights . estimate`` -> arrays of shape (draws, ...)."""
    g = torch.Generator().manual_seed(seed)
    values, logit_grads, feat_grads = [], [], []
    for _ in range(draws):
        lg = logits.clone().requires_grad_(True)
        ft = feats.clone().requires_grad_(True)
        est = estimate_fn(torch.softmax(lg, 0), ft, g)
        (weights @ est).backward()
        values.append(est.detach())
        logit_grads.append(lg.grad if lg.grad is not None else torch.zeros_like(lg))
        feat_grads.append(ft.grad)
    return torch.stack(values), torch.stack(logit_grads), torch.stack(feat_grads)


def _unbiased(samples, exact, z=4.5):
    mean = samples.mean(0)
    se = samples.std(0) / np.sqrt(samples.shape[0])
    return bool(torch.all((mean - exact).abs() <= z * se + 1e-9))


def with_replacement(probs, feats, g, n=3):
    idx = sample_with_replacement(probs, n, g)
    return expectation_with_replacement(probs, idx, feats[idx])


def without_replacement(probs, feats, g, k=3):
    idx = gumbel_top_k(torch.log(probs), k, g)
    return expectation_without_replacement(probs, idx, feats[idx])


def without_replacement_inclusive_cumsum(probs, feats, g, k=3):
    """The public port's bug: an inclusive prefix sum of the drawn mass."""
    idx = gumbel_top_k(torch.log(probs), k, g)
    drawn = probs[idx]
    mass = torch.cumsum(drawn, 0)
    weighted = drawn[:, None] * feats[idx]
    exact_part = torch.cumsum(weighted, 0) - weighted
    sampled = ((1 - mass).detach() * drawn / drawn.detach())[:, None] * feats[idx]
    return (exact_part + sampled).mean(0)


def with_replacement_no_score(probs, feats, g, n=3):
    """Broken: no score-function correction, so logit gradients are lost."""
    idx = sample_with_replacement(probs, n, g)
    return feats[idx].mean(0)


@pytest.mark.parametrize("estimator", [with_replacement, without_replacement])
def test_estimator_value_and_gradients_are_unbiased(estimator):
    logits, feats, weights = _problem()
    value, logit_grad, feat_grad = _exact(logits, feats, weights)
    v, lg, fg = _monte_carlo(estimator, logits, feats, weights)
    assert _unbiased(v, value)
    assert _unbiased(lg, logit_grad)
    assert _unbiased(fg, feat_grad)


@pytest.mark.parametrize(
    "broken", [without_replacement_inclusive_cumsum, with_replacement_no_score]
)
def test_checks_detect_broken_estimators(broken):
    logits, feats, weights = _problem()
    value, logit_grad, feat_grad = _exact(logits, feats, weights)
    v, lg, fg = _monte_carlo(broken, logits, feats, weights)
    assert not (_unbiased(v, value) and _unbiased(lg, logit_grad) and _unbiased(fg, feat_grad))


def test_without_replacement_uses_every_position_exactly_when_k_equals_n():
    logits, feats, weights = _problem(n=4)
    probs = torch.softmax(logits, 0)
    g = torch.Generator().manual_seed(3)
    idx = gumbel_top_k(torch.log(probs), 4, g)
    est = expectation_without_replacement(probs, idx, feats[idx])
    # the last term of the sum is exact; the average of all terms is still unbiased, not exact
    assert torch.allclose(
        (torch.cumsum(probs[idx][:, None] * feats[idx], 0))[-1], probs @ feats
    )
    assert est.shape == (feats.shape[1],)


def test_two_stage_combination_is_unbiased():
    g = torch.Generator().manual_seed(5)
    tile_logits = torch.randn(4, generator=g, dtype=torch.float64)
    inner_logits = torch.randn(4, 5, generator=g, dtype=torch.float64)
    feats = torch.randn(4, 5, 2, generator=g, dtype=torch.float64)
    weights = torch.randn(2, generator=g, dtype=torch.float64)

    def exact_psi(tl, il, ft):
        a = torch.softmax(tl, 0)
        b = torch.softmax(il, 1)
        return torch.einsum("t,tj,tjd->d", a, b, ft)

    params = [p.clone().requires_grad_(True) for p in (tile_logits, inner_logits, feats)]
    exact = exact_psi(*params)
    (weights @ exact).backward()
    exact_grads = [p.grad for p in params]

    n_draws = 6
    samples = {"value": [], "grads": [[], [], []]}
    for _ in range(3000):
        tl, il, ft = [p.detach().clone().requires_grad_(True) for p in params]
        a = torch.softmax(tl, 0)
        tiles = sample_with_replacement(a, n_draws, g)
        k = counts(tiles, 4)
        estimates = {}
        for t in torch.nonzero(k).flatten().tolist():
            b = torch.softmax(il[t], 0)
            idx = gumbel_top_k(torch.log(b), min(int(k[t]), 5), g)
            estimates[t] = expectation_without_replacement(b, idx, ft[t][idx])
        psi_hat = two_stage_expectation(a, k, estimates)
        (weights @ psi_hat).backward()
        samples["value"].append(psi_hat.detach())
        for store, p in zip(samples["grads"], (tl, il, ft)):
            store.append(p.grad)
    assert _unbiased(torch.stack(samples["value"]), exact.detach())
    for store, exact_grad in zip(samples["grads"], exact_grads):
        assert _unbiased(torch.stack(store), exact_grad)


def test_gumbel_top_k_matches_sequential_sampling_without_replacement():
    probs = torch.tensor([0.4, 0.3, 0.2, 0.1], dtype=torch.float64)
    g = torch.Generator().manual_seed(11)
    draws = 20000
    idx = gumbel_top_k(torch.log(probs).expand(draws, 4), 2, g)
    observed = {}
    for pair in map(tuple, idx.tolist()):
        observed[pair] = observed.get(pair, 0) + 1
    pairs = [(i, j) for i in range(4) for j in range(4) if i != j]
    # sequential draws: P(i then j) = p_i * p_j / (1 - p_i)
    expected = np.array([probs[i] * probs[j] / (1 - probs[i]) for i, j in pairs]) * draws
    counts_observed = np.array([observed.get(p, 0) for p in pairs])
    assert stats.chisquare(counts_observed, expected).pvalue > 1e-3

    # noise on the probabilities instead of the log-probabilities (a public port's bug) is detected
    g = torch.Generator().manual_seed(11)
    from zoomin.sampling import gumbel_noise

    wrong = torch.topk(probs.expand(draws, 4) + gumbel_noise((draws, 4), probs, g), 2).indices
    wrong_counts = {}
    for pair in map(tuple, wrong.tolist()):
        wrong_counts[pair] = wrong_counts.get(pair, 0) + 1
    assert stats.chisquare(np.array([wrong_counts.get(p, 0) for p in pairs]), expected).pvalue < 1e-6


def test_samplers_are_deterministic_under_a_seed_and_validate_arguments():
    probs = torch.softmax(torch.randn(10, generator=torch.Generator().manual_seed(0)), 0)
    a = sample_with_replacement(probs, 7, torch.Generator().manual_seed(4))
    b = sample_with_replacement(probs, 7, torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    c = gumbel_top_k(torch.log(probs), 5, torch.Generator().manual_seed(4))
    assert len(set(c.tolist())) == 5
    assert torch.equal(top_k(probs, 3), torch.argsort(probs, descending=True)[:3])
    with pytest.raises(ValueError):
        gumbel_top_k(torch.log(probs), 11)
    with pytest.raises(ValueError):
        sample_with_replacement(probs, 0)
