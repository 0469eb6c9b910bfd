"""Unbiasedness of the samplers and single-stage estimators (values and gradients).

Each check compares a Monte Carlo mean with the exact quantity, with a tolerance of a few standard
errors, and is shown to FAIL on a deliberately broken estimator.
"""

import numpy as np
import pytest
import torch
from scipy import stats

from zoomin.estimators import (
    count_control_variate,
    earlier_draws_baseline,
    expectation_with_replacement,
    expectation_without_replacement,
    leave_one_out_baseline,
    two_stage_expectation,
    without_replacement_control_variate,
    without_replacement_weights,
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


def _orderings_mean(weights_fn, probs, feats, weights, k):
    """Exact expectation over every ordered draw of ``k`` distinct positions (sequential sampling
    without replacement) of the estimate's value and of its gradient w.r.t. the logits and features
    (the probability of an ordering held constant: the surrogate's gradient carries the rest)."""
    import itertools

    logits, feats = probs.log().clone().requires_grad_(True), feats.clone().requires_grad_(True)
    value, logit_grad, feat_grad = 0.0, torch.zeros_like(logits), torch.zeros_like(feats)
    for order in itertools.permutations(range(len(probs)), k):
        p = torch.softmax(logits, 0)
        drawn = p[list(order)]
        chance = float(torch.prod(drawn / (1 - (torch.cumsum(drawn, 0) - drawn))).detach())
        estimate = (weights_fn(drawn)[:, None] * feats[list(order)]).sum(0)
        grads = torch.autograd.grad(weights @ estimate, (logits, feats))
        value = value + chance * estimate.detach()
        logit_grad, feat_grad = logit_grad + chance * grads[0], feat_grad + chance * grads[1]
    return value, logit_grad, feat_grad


@pytest.mark.parametrize("k", [1, 2, 4])
def test_without_replacement_is_exactly_unbiased_over_every_ordering(k):
    """Over all orderings (k = n = 4 included: every position drawn), the mean of the estimator's
    output equals the exact sum in value and in gradient, to float64 round-off. A single ordering
    with k = n is not exact: only its last bracket is (docs/method.md §5.3); the mean over the
    orderings is. The inclusive-prefix and missing-stop-gradient variants are off by far more."""
    logits, feats, weights = _problem(n=4)
    exact = _exact(logits, feats, weights)
    probs = torch.softmax(logits, 0)
    mean = _orderings_mean(without_replacement_weights, probs, feats, weights, k)
    for got, want in zip(mean, exact):
        assert torch.allclose(got, want, atol=1e-12, rtol=0)
    if k > 1:
        for broken in (_inclusive_mass_weights, _live_mass_weights):
            wrong = _orderings_mean(broken, probs, feats, weights, k)
            assert max(float((got - want).abs().max()) for got, want in zip(wrong, exact)) > 1e-3


def _inclusive_mass_weights(drawn):
    """BROKEN: remaining mass 1 - S_i (inclusive prefix sum)."""
    remaining = (1 - torch.cumsum(drawn, 0)).detach()
    k = len(drawn)
    return (drawn * (k - 1 - torch.arange(k)) + remaining * drawn / drawn.detach()) / k


def _live_mass_weights(drawn):
    """BROKEN: no stop-gradient on the remaining mass 1 - S_{i-1}."""
    remaining = 1 - (torch.cumsum(drawn, 0) - drawn)
    k = len(drawn)
    return (drawn * (k - 1 - torch.arange(k)) + remaining * drawn / drawn.detach()) / k


def test_batched_rows_and_padding_give_each_rows_own_estimate():
    """Rows of different lengths in one padded call: each row's estimate (value and gradient) is
    the one it gets alone; the padding carries no weight."""
    g = torch.Generator().manual_seed(7)
    logits = torch.randn(3, 6, generator=g, dtype=torch.float64, requires_grad=True)
    feats = torch.randn(3, 4, 2, generator=g, dtype=torch.float64)
    order = torch.stack([torch.randperm(6, generator=g)[:4] for _ in range(3)])
    lengths = torch.tensor([4, 1, 3])
    valid = torch.arange(4) < lengths[:, None]
    probs = torch.softmax(logits, 1)
    batched = (without_replacement_weights(probs.gather(1, order), valid)[..., None] * feats).sum(1)
    (batched_grad,) = torch.autograd.grad(batched.sum(), logits)
    for row, length in enumerate(lengths.tolist()):
        alone_probs = torch.softmax(logits, 1)[row]
        alone = expectation_without_replacement(alone_probs, order[row, :length], feats[row, :length])
        (alone_grad,) = torch.autograd.grad(alone.sum(), logits)
        assert torch.allclose(batched[row], alone, atol=1e-12)
        assert torch.allclose(batched_grad[row], alone_grad[row], atol=1e-12)


def _mean_control_variate_gradient(term_fn, probs, feats, weights, k, replacement):
    """Exact expectation over every draw sequence of ``k`` positions (i.i.d., or ordered distinct)
    of the control-variate term's value and logit gradient (``term_fn(drawn, drawn_feats)``)."""
    import itertools

    logits = probs.log().clone().requires_grad_(True)
    sequences = itertools.product(range(len(probs)), repeat=k) if replacement else itertools.permutations(range(len(probs)), k)
    value, grad = 0.0, torch.zeros_like(logits)
    for order in sequences:
        p = torch.softmax(logits, 0)
        drawn = p[list(order)]
        if replacement:
            chance = float(torch.prod(drawn).detach())
        else:
            chance = float(torch.prod(drawn / (1 - (torch.cumsum(drawn, 0) - drawn))).detach())
        term = term_fn(drawn, feats[list(order)])
        assert float((weights @ term).detach().abs()) < 1e-12  # zero in value for every draw
        grad = grad + chance * torch.autograd.grad(weights @ term, logits)[0]
        value = value + chance * term.detach()
    return value, grad


def _without_replacement_cv(baseline_fn):
    def term(drawn, feats):
        valid = torch.ones(1, len(drawn), dtype=torch.bool)
        baseline = baseline_fn(feats[None], valid, torch.zeros(1, dtype=torch.long), 1)
        return without_replacement_control_variate(drawn[None], valid, baseline)[0]

    return term


def _with_replacement_cv(self_inclusive: bool):
    def term(drawn, feats):
        n = len(drawn)
        if self_inclusive:  # BROKEN: the mean of all draws, the draw itself included
            baseline = feats.mean(0, keepdim=True).expand_as(feats)
        else:
            baseline = leave_one_out_baseline(feats, torch.ones(n), torch.zeros(n, dtype=torch.long), 1)
        return count_control_variate(drawn, 1.0, n, baseline).sum(0)

    return term


def _later_draws_too(values, valid, groups, n_groups):
    """BROKEN for draws without replacement: the mean of every OTHER draw of the row, later ones included."""
    total = values.sum(1, keepdim=True)
    return (total - values) / (values.shape[1] - 1)


def _self_inclusive_prefix(values, valid, groups, n_groups):
    """BROKEN: the mean of the draws up to and including this one."""
    return torch.cumsum(values, 1) / torch.arange(1, values.shape[1] + 1, dtype=values.dtype)[None, :, None]


@pytest.mark.parametrize("k", [2, 3, 4])
def test_control_variates_are_zero_in_value_and_in_mean_gradient(k):
    """Exact enumeration (n = 4 positions): the control-variate terms are zero in value for every
    draw, and their logit gradient averages to exactly zero over the draws, so the estimator stays
    unbiased in value and gradient. Baselines that see the draw they are the baseline of (itself,
    or, without replacement, a later draw, which depends on it) do not average to zero."""
    logits, feats, weights = _problem(n=4)
    probs = torch.softmax(logits, 0)
    for term, replacement in ((_without_replacement_cv(earlier_draws_baseline), False), (_with_replacement_cv(False), True)):
        value, grad = _mean_control_variate_gradient(term, probs, feats, weights, k, replacement)
        assert torch.allclose(value, torch.zeros_like(value), atol=1e-12)
        assert torch.allclose(grad, torch.zeros_like(grad), atol=1e-12)
    for term, replacement in (
        (_without_replacement_cv(_self_inclusive_prefix), False),
        (_without_replacement_cv(_later_draws_too), False),
        (_with_replacement_cv(True), True),
    ):
        _, grad = _mean_control_variate_gradient(term, probs, feats, weights, k, replacement)
        assert float(grad.abs().max()) > 1e-3


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
