"""The statistics behind every table and figure: intervals and tests, from scipy, never by hand.

* :func:`proportion_interval` -- a 95 % interval of an accuracy (a proportion of correct images);
* :func:`learned` -- whether an interval lies above chance.
"""

from __future__ import annotations

from scipy import stats

LEVEL = 0.95  # confidence level of every interval the report gives


def proportion_interval(successes: int, n: int, level: float = LEVEL) -> tuple[float, float]:
    """Wilson score interval of ``successes`` out of ``n`` (as fractions in [0, 1]); ``(0, 1)`` for ``n = 0``."""
    if n == 0:
        return 0.0, 1.0
    interval = stats.binomtest(int(successes), int(n)).proportion_ci(confidence_level=level, method="wilson")
    return float(interval.low), float(interval.high)


def learned(low: float, chance: float) -> bool:
    """An interval whose lower end lies above the chance rate: the method learned something."""
    return low > chance
