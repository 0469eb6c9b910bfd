"""The report's statistics against values known independently: closed forms and textbook tables."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from zoomin.report.stats import (
    auc,
    auc_interval,
    clustered_spearman_interval,
    hull,
    learned,
    majority_rate,
    mean_interval,
    paired_difference_interval,
    proportion_interval,
    sign_test,
)


def test_wilson_interval_of_a_known_case():
    # 16 of 16 correct: the Wilson 95 % interval is [0.806, 1] (the closed form, z = 1.96)
    low, high = proportion_interval(16, 16)
    assert low == pytest.approx(0.806, abs=1e-3) and high == pytest.approx(1.0)
    low, high = proportion_interval(8, 16)
    assert low == pytest.approx(0.280, abs=1e-3) and high == pytest.approx(0.720, abs=1e-3)


def test_no_images_say_nothing():
    assert proportion_interval(0, 0) == (0.0, 1.0)


def test_learned_needs_the_whole_interval_above_chance():
    assert learned(*proportion_interval(16, 16)[:1], chance=0.5)
    assert not learned(proportion_interval(10, 16)[0], chance=0.5)


def test_t_interval_of_three_runs_uses_the_t_table():
    # mean 70, sd 10, 3 runs: 70 -+ t(0.975, 2) * 10 / sqrt(3), t(0.975, 2) = 4.303 (t table)
    low, high = mean_interval([60.0, 70.0, 80.0])
    half = 4.303 * 10 / math.sqrt(3)
    assert low == pytest.approx(70 - half, abs=0.01) and high == pytest.approx(70 + half, abs=0.01)


def test_t_interval_needs_two_runs_and_is_a_point_when_they_agree():
    assert all(math.isnan(v) for v in mean_interval([80.0]))
    assert mean_interval([90.0, 90.0, 90.0]) == (90.0, 90.0)


def test_exact_sign_test_is_mcnemars_binomial():
    # 8 images right only for the row, 2 only for the reference: p = 2 * P(X <= 2), X ~ Bin(10, 1/2)
    better, worse, p = sign_test([1] * 8 + [-1] * 2 + [0] * 30)
    assert (better, worse) == (8, 2)
    assert p == pytest.approx(2 * (1 + 10 + 45) / 1024)
    assert sign_test([0, 0, 0]) == (0, 0, 1.0)


def test_auc_is_the_share_of_positive_negative_pairs_ordered_right():
    # positives 0.9, 0.4; negatives 0.5, 0.1, 0.4: pairs (0.9 > all 3), (0.4 > 0.1, = 0.4) -> (3 + 1 + 0.5) / 6
    assert auc([1, 1, 0, 0, 0], [0.9, 0.4, 0.5, 0.1, 0.4]) == pytest.approx(4.5 / 6)
    assert math.isnan(auc([1, 1], [0.2, 0.3]))


def test_auc_interval_of_separated_classes_is_one():
    labels = np.array([1] * 5 + [0] * 5)
    scores = np.array([[0.9, 0.8, 0.7, 0.95, 0.6, 0.1, 0.2, 0.3, 0.05, 0.4]])
    assert auc_interval([(labels, scores)]) == (1.0, 1.0)


def test_auc_interval_matches_the_hanley_mcneil_standard_error():
    # Exponential scores (the Hanley-McNeil model): SE from their closed form, about 0.03 here.
    rng = np.random.default_rng(3)
    n1 = n0 = 150
    pos, neg = rng.exponential(2.0, n1), rng.exponential(1.0, n0)
    labels = np.array([1] * n1 + [0] * n0)
    scores = np.concatenate([pos, neg])[None]
    a = auc(labels, scores[0])
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    se = math.sqrt((a * (1 - a) + (n1 - 1) * (q1 - a * a) + (n0 - 1) * (q2 - a * a)) / (n1 * n0))
    low, high = auc_interval([(labels, scores)])
    assert low < a < high
    assert (high - low) == pytest.approx(2 * 1.96 * se, rel=0.15)


def test_auc_interval_of_one_image_per_class_is_unknown():
    # one positive and one negative: nothing to resample (two test slides of the tiny config)
    assert all(math.isnan(v) for v in auc_interval([(np.array([0, 1]), np.array([[0.2, 0.7]]))]))


def test_auc_interval_of_replicates_resamples_their_images_together():
    # Two runs with identical scores on one test set: the same interval as one run (the images
    # are drawn once for both); two independent test sets of the same scores would narrow it.
    rng = np.random.default_rng(4)
    labels = np.array([1] * 20 + [0] * 20)
    scores = np.concatenate([rng.normal(1, 1, 20), rng.normal(0, 1, 20)])
    one = auc_interval([(labels, scores[None])])
    replicated = auc_interval([(labels, np.stack([scores, scores]))])
    independent = auc_interval([(labels, scores[None]), (labels, scores[None])])
    assert replicated == pytest.approx(one)
    assert independent[1] - independent[0] < 0.85 * (one[1] - one[0])


def test_paired_difference_interval_is_bonett_prices_adjusted_wald():
    # 40 images, 8 right only for the first, 2 only for the second: d = (9 - 3) / 42,
    # se = sqrt((12 / 42 - d^2) / 42) = 0.07948, d -+ 1.96 se = [-0.0129, 0.2986]
    low, high = paired_difference_interval(8, 2, 40)
    assert low == pytest.approx(-0.0129, abs=2e-4) and high == pytest.approx(0.2986, abs=2e-4)
    # no discordant image among 16: not a point, but -+ 1.96 * sqrt((2 / 18) / 18) = -+ 0.154
    low, high = paired_difference_interval(0, 0, 16)
    assert low == pytest.approx(-0.154, abs=1e-3) and high == pytest.approx(0.154, abs=1e-3)
    assert paired_difference_interval(30, 0, 30)[1] == 1.0  # clipped to a difference of 100 %


def test_hull_and_majority():
    assert hull((1.0, 3.0), (2.0, 5.0), (math.nan, math.nan)) == (1.0, 5.0)
    assert all(math.isnan(v) for v in hull((math.nan, math.nan)))
    assert majority_rate([0, 1, 1, 2, 1]) == pytest.approx(0.6)
    assert math.isnan(majority_rate([]))


def test_clustered_spearman_interval_is_wider_than_the_tiles_suggest():
    # 20 images of 25 tiles; within an image attention follows coverage weakly, and each image adds
    # its own offset to both: the tiles are far from independent. The interval over tiles taken as
    # independent (Fisher z, about -+ 1.96 / sqrt(497)) would be too narrow; the clustered one is wider.
    rng = np.random.default_rng(5)
    offsets = np.repeat(rng.normal(0, 1, 20), 25)
    coverage = offsets + rng.normal(0, 1, 500)
    attention = offsets + rng.normal(0, 1, 500)
    clusters = np.repeat(np.arange(20), 25)
    rho = stats.spearmanr(attention, coverage).statistic
    low, high = clustered_spearman_interval(attention, coverage, clusters, n_resamples=999)
    independent = math.tanh(math.atanh(rho) + 1.96 / math.sqrt(497)) - math.tanh(math.atanh(rho) - 1.96 / math.sqrt(497))
    assert low < rho < high
    assert high - low > 2 * independent
    assert all(math.isnan(v) for v in clustered_spearman_interval([1.0, 2.0], [1.0, 2.0], ["a", "a"]))
