"""The report's statistics against known values."""

from __future__ import annotations

import pytest

from zoomin.report.stats import learned, proportion_interval


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
