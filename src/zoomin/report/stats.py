"""The statistics behind every table, figure and claim: intervals and tests, from scipy, never by hand.

Each function takes plain numbers (arrays of per-image or per-run values) and knows nothing of
runs or tables; :mod:`zoomin.report.evidence` decides what goes in.

* :func:`proportion_interval` -- the Wilson interval of a proportion (an accuracy);
* :func:`mean_interval` -- the t-interval of a mean (of run accuracies, AUCs, differences);
* :func:`bootstrap_interval` -- a BCa bootstrap interval of any statistic of one or more samples;
* :func:`auc_interval` -- the ROC AUC's interval by a class-stratified bootstrap of the test images;
* :func:`clustered_spearman_interval` -- Spearman's rho's interval, resampling whole images;
* :func:`sign_test` -- the exact sign test of paired differences (McNemar's exact test when each
  difference is one image's right-minus-wrong);
* :func:`paired_difference_interval` -- the interval of a difference of two accuracies on the
  same images (Bonett and Price's adjusted Wald interval: scipy has none);
* :func:`hull` -- the smallest interval that contains several intervals;
* :func:`majority_rate`, :func:`learned` -- the rate of a constant predictor, and whether an
  interval lies above it.

Every interval is at the level :data:`LEVEL` (95 %). The bootstrap is seeded (:data:`BOOTSTRAP_SEED`),
so a table made twice from the same runs is the same table.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats

LEVEL = 0.95  # confidence level of every interval the report gives
BOOTSTRAP_RESAMPLES = 9999
BOOTSTRAP_SEED = 0
NO_INTERVAL = (math.nan, math.nan)


def proportion_interval(successes: int, n: int, level: float = LEVEL) -> tuple[float, float]:
    """Wilson score interval of ``successes`` out of ``n`` (as fractions in [0, 1]); ``(0, 1)`` for ``n = 0``."""
    if n == 0:
        return 0.0, 1.0
    interval = stats.binomtest(int(successes), int(n)).proportion_ci(confidence_level=level, method="wilson")
    return float(interval.low), float(interval.high)


def learned(low: float, chance: float) -> bool:
    """An interval whose lower end lies above the chance rate: the method learned something."""
    return low > chance


def mean_interval(
    values: Sequence[float], level: float = LEVEL, bounds: tuple[float, float] = (-math.inf, math.inf)
) -> tuple[float, float]:
    """Student's t-interval of the mean of ``values`` (``n - 1`` degrees of freedom), clipped to
    ``bounds`` (an accuracy cannot pass 100 %, nor an AUC 1); NaN for fewer than two values (one
    value has no spread to go by), the mean itself when they all agree."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) < 2:
        return NO_INTERVAL
    mean, sem = float(values.mean()), float(stats.sem(values))
    if sem == 0:
        return mean, mean
    low, high = stats.t.interval(level, len(values) - 1, loc=mean, scale=sem)
    return max(float(low), bounds[0]), min(float(high), bounds[1])


def bootstrap_interval(
    samples: Sequence[np.ndarray],
    statistic: Callable[..., np.ndarray],
    level: float = LEVEL,
    vectorized: bool = True,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
) -> tuple[float, float]:
    """BCa bootstrap interval (``scipy.stats.bootstrap``) of ``statistic(*samples, axis=-1)`` (or
    ``statistic(*samples)`` when not ``vectorized``), each sample resampled on its own. Where BCa is
    undefined (every resample gives the same value) the percentile interval, which is then that
    value; NaN when a sample has fewer than two values (nothing to resample) or the statistic is
    undefined."""
    if any(len(sample) < 2 for sample in samples):
        return NO_INTERVAL
    low = high = math.nan
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # BCa's "degenerate distribution" warning: handled below
            result = stats.bootstrap(
                tuple(samples), statistic, vectorized=vectorized, n_resamples=n_resamples,
                confidence_level=level, method=method, rng=np.random.default_rng(BOOTSTRAP_SEED),
            )
        low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
        if math.isfinite(low) and math.isfinite(high):
            break
    return low, high


def _auc(positives: np.ndarray, negatives: np.ndarray, axis: int = -1) -> np.ndarray:
    """ROC AUC as the Mann-Whitney U of the positives' scores over the negatives', divided by the
    number of pairs: the chance that a positive outscores a negative (ties count half)."""
    u = stats.mannwhitneyu(positives, negatives, axis=axis).statistic
    return u / (positives.shape[axis] * negatives.shape[axis])


def auc(labels: Sequence[int], scores: Sequence[float]) -> float:
    """ROC AUC of ``scores`` for class 1 against class 0; NaN when a class is missing."""
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=float)
    positives, negatives = scores[labels == 1], scores[labels == 0]
    if len(positives) == 0 or len(negatives) == 0:
        return math.nan
    return float(_auc(positives, negatives))


def auc_interval(groups: Sequence[tuple[np.ndarray, np.ndarray]], level: float = LEVEL) -> tuple[float, float]:
    """Interval of the mean ROC AUC of several runs by a class-stratified bootstrap of test images.

    ``groups``: one ``(labels, scores)`` per distinct test set, ``labels`` of its ``n`` images
    (0/1) and ``scores`` ``(k, n)``, the class-1 scores of the ``k`` runs that tested those images.
    Each resample draws, within each test set, its positives and its negatives with replacement
    (so every resample has both classes), the same draw for every run of that test set; the
    statistic is the mean over all runs of their AUCs on the drawn images."""
    samples, owners = [], []
    for labels, scores in groups:
        labels = np.asarray(labels)
        for cls in (1, 0):
            samples.append(np.flatnonzero(labels == cls))
        owners.append(np.atleast_2d(np.asarray(scores, dtype=float)))
    if not owners:
        return NO_INTERVAL

    def mean_auc(*drawn: np.ndarray, axis: int = -1) -> np.ndarray:
        aucs = []
        for g, scores in enumerate(owners):
            pos, neg = drawn[2 * g].astype(int), drawn[2 * g + 1].astype(int)
            aucs += [_auc(run_scores[pos], run_scores[neg], axis=axis) for run_scores in scores]
        return np.mean(aucs, axis=0)

    return bootstrap_interval(samples, mean_auc, level)


def sign_test(differences: Sequence[float]) -> tuple[int, int, float]:
    """``(better, worse, p)``: how many paired differences are positive and how many negative, and
    the two-sided exact binomial test (``scipy.stats.binomtest``) that both are equally likely; ties
    are left out, ``p = 1`` when every pair ties. With differences of one image's correctness
    (+1, 0, -1) between two classifiers this is McNemar's exact test on the discordant pairs."""
    differences = np.asarray(differences, dtype=float)
    better, worse = int((differences > 0).sum()), int((differences < 0).sum())
    if better + worse == 0:
        return better, worse, 1.0
    return better, worse, float(stats.binomtest(better, better + worse, 0.5).pvalue)


def paired_difference_interval(better: float, worse: float, n: int, level: float = LEVEL) -> tuple[float, float]:
    """Interval of the difference of two accuracies measured on the same ``n`` images, ``better``
    of them right only for the first classifier and ``worse`` right only for the second (fractions).

    Bonett and Price's adjusted Wald interval for paired proportions (Psychometrika 2012): one
    pseudo-observation added to each discordant cell, ``d = (b + 1 - c - 1) / (n + 2)``,
    ``se = sqrt(((b + 1 + c + 1) / (n + 2) - d^2) / (n + 2))``, ``d -+ z se`` with ``z`` from
    ``scipy.stats.norm``, clipped to [-1, 1]. scipy has no interval for paired proportions; a
    bootstrap of the per-image differences collapses to a point when no image is discordant (16
    slides both right: "0 [0, 0]"), while this one stays honest there (-+ 0.15 for 16 images) and
    keeps its coverage near the nominal level with few discordant pairs. ``better`` and ``worse``
    may be fractional (discordance averaged over seed replicates of one test set)."""
    if n == 0:
        return NO_INTERVAL
    first, second = (better + 1) / (n + 2), (worse + 1) / (n + 2)
    difference = first - second
    se = math.sqrt(max(first + second - difference**2, 0.0) / (n + 2))
    z = float(stats.norm.ppf(0.5 + level / 2))
    return max(difference - z * se, -1.0), min(difference + z * se, 1.0)


def clustered_spearman_interval(
    x: Sequence[float], y: Sequence[float], clusters: Sequence[object], level: float = LEVEL, n_resamples: int = 1999
) -> tuple[float, float]:
    """BCa bootstrap interval of Spearman's rho of ``x`` and ``y`` resampling whole ``clusters``
    (e.g. the tiles of one image: they share one attention map, which sums to one, so they are not
    independent and the p-value of ``scipy.stats.spearmanr`` over tiles is too small)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    _, cluster_of = np.unique(np.asarray(clusters, dtype=str), return_inverse=True)
    members = [np.flatnonzero(cluster_of == c) for c in range(cluster_of.max() + 1 if len(x) else 0)]

    def rho(drawn: np.ndarray) -> float:
        chosen = np.concatenate([members[int(c)] for c in drawn])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # constant input: rho undefined (NaN)
            return float(stats.spearmanr(x[chosen], y[chosen]).statistic)

    if len(members) < 2:
        return NO_INTERVAL
    return bootstrap_interval([np.arange(len(members))], rho, level, vectorized=False, n_resamples=n_resamples)


def hull(*intervals: tuple[float, float]) -> tuple[float, float]:
    """The smallest interval containing every finite interval given; NaN when none is."""
    finite = [(low, high) for low, high in intervals if math.isfinite(low) and math.isfinite(high)]
    if not finite:
        return NO_INTERVAL
    return min(low for low, _ in finite), max(high for _, high in finite)


def majority_rate(labels: Sequence[int]) -> float:
    """Share of the commonest label: the accuracy of the best constant prediction; NaN for none."""
    labels = np.asarray(labels)
    if len(labels) == 0:
        return math.nan
    return float(np.unique(labels, return_counts=True)[1].max() / len(labels))
