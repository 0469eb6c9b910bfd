"""The numbers behind the figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from zoomin.models.output import AttentionMap
from zoomin.models.params import ATSParams, ZoomInKParams, ZoomInParams
from zoomin.report.agreement import cell_coverage, spearman_summary
from zoomin.report.figure_data import configuration_label, pareto_points


def test_a_configuration_is_labelled_by_the_parameters_that_set_its_memory():
    assert configuration_label(ZoomInParams(s1=0.05, s2=0.1).to_dict()) == "s1=0.05 s2=0.1 tile=250 n=10"
    assert configuration_label(ATSParams(scale=0.3, n=50).to_dict()) == "scale=0.3 n=50"
    assert configuration_label({"feature": "lenet"}) == ""
    k3 = ZoomInKParams(regions=(4096, 1024), scales=(1 / 512, 1 / 128, 1 / 32), n=64).to_dict()
    assert configuration_label(k3) == "s1=0.00195312 s2=0.0078125 s3=0.03125 regions=4096/1024 n=64"
    adaptive = ZoomInKParams(n_rule="perplexity", n_per_perplexity=3, n_min=2, n_max=50).to_dict()
    assert configuration_label(adaptive) == "s1=0.1 s2=0.2 regions=250 n=auto(c=3, 2-50)"


def test_the_pareto_front_keeps_the_best_of_each_model_within_each_budget():
    runs = pd.DataFrame({
        "dataset": "colon",
        "method": ["a1", "a2", "a3", "z1", "z2"],
        "label": ["a1", "a2", "a3", "z1", "z2"],
        "model": ["ats", "ats", "ats", "zoomin", "zoomin"],
        "run": "r0f0",
        "accuracy": [70.0, 60.0, 90.0, 80.0, 75.0],
        "memory_mb": [1.0, 2.0, 5.0, 1.5, 3.0],
        "gmacs": 0.05,
        "time_ms": 1.0,
    })
    points = pareto_points(runs).set_index("method")
    assert points.on_front.to_dict() == {"a1": True, "a2": False, "a3": True, "z1": True, "z2": False}


def test_cell_coverage_is_the_object_fraction_of_each_cell():
    mask = np.zeros((100, 150))
    mask[:50, :50] = 1.0  # the top-left cell, whole
    mask[50:, 100:125] = 1.0  # half of the bottom-right cell
    amap = AttentionMap(torch.full((3, 3), 1 / 9), (0.0, 0.0), (100.0, 100.0))  # grid padded past the image
    coverage = cell_coverage(amap, mask, (200, 300))  # the mask at half the image's resolution
    assert coverage[0, 0] == pytest.approx(1.0) and coverage[1, 2] == pytest.approx(0.5)
    assert coverage[0, 1] == 0.0 and np.isnan(coverage[2]).all()


def test_spearman_summary_is_scipys_rho():
    rng = np.random.default_rng(0)
    coverage = np.concatenate([np.zeros(30), rng.uniform(0, 1, 30)])
    attention = coverage + rng.normal(0, 0.3, 60)
    tiles = pd.DataFrame({"dataset": "d", "method": "m", "run": "s0", "image_id": [f"i{k // 4}" for k in range(60)],
                          "row": 0, "col": 0, "attention": attention, "coverage": coverage})
    summary = spearman_summary(tiles).set_index("cells")
    assert summary.loc["all", "spearman_rho"] == pytest.approx(stats.spearmanr(attention, coverage).statistic)
    inside = coverage > 0
    assert summary.loc["object", "spearman_rho"] == pytest.approx(
        stats.spearmanr(attention[inside], coverage[inside]).statistic
    )
    assert summary.loc["all", "tiles"] == 60 and summary.loc["object", "tiles"] == 30


def test_spearman_summary_of_known_orderings():
    """A monotone relation is rho 1 whatever its shape, a reversed one -1 (not a mirror of the code's call)."""
    coverage = np.linspace(0.05, 1.0, 20)
    for attention, rho in ((coverage**3, 1.0), (1.0 - np.sqrt(coverage), -1.0)):
        tiles = pd.DataFrame({"dataset": "d", "method": "m", "run": "s0", "image_id": "i", "row": 0, "col": 0,
                              "attention": attention, "coverage": coverage})
        summary = spearman_summary(tiles).set_index("cells")
        assert summary.loc["all", "spearman_rho"] == pytest.approx(rho)
