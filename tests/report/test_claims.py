"""The claims' verdicts from synthetic table rows: each decision rule on either side of its line."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from zoomin.report.claims import (
    CONTRADICTED,
    INCONCLUSIVE,
    NOT_RUN,
    REPRODUCED,
    judge,
    overall,
    write_claims,
)

MODELS = {"zoomin_lenet": "zoomin", "zoomin_res": "zoomin", "ats": "ats", "cnn": "cnn", "patchdrop": "patchdrop",
          "zoomin_lambda0": "zoomin", "zoomin_lambda1": "zoomin", "zoomin_contrastive": "zoomin", "zoomin_n5": "zoomin"}


def row(method, label, block="Colon Cancer", **values):
    base = {"block": block, "dataset": "colon", "method": method, "label": label, "runs": 3, "learned": True,
            "accuracy_mean": 80.0, "accuracy_low": 70.0, "accuracy_high": 90.0, "majority_rate": 50.0,
            "diff_accuracy": math.nan, "diff_low": math.nan, "diff_high": math.nan, "diff_p": math.nan,
            "memory_mb": 10.0, "memory_mb_min": 10.0, "memory_mb_max": 10.0, "paper_accuracy": math.nan,
            "paper_memory_mb": math.nan}
    return {**base, **values}


def table1():
    # diff_* are the baseline minus Zoom-In; the claim's effect is Zoom-In minus the baseline
    return pd.DataFrame([
        row("ats", "ATS", diff_accuracy=-3.0, diff_low=-8.0, diff_high=2.0, diff_p=0.4, paper_accuracy=90.7,
            memory_mb=30.0, memory_mb_min=25.0, memory_mb_max=35.0, paper_memory_mb=15.83),
        row("cnn", "CNN", diff_accuracy=20.0, diff_low=10.0, diff_high=30.0, diff_p=0.001,
            memory_mb=10.5, memory_mb_min=10.2, memory_mb_max=10.8),
        row("patchdrop", "PatchDrop", diff_accuracy=-3.0, diff_low=-15.0, diff_high=10.0),
        row("zoomin_res", "Zoom-In (Res)", diff_accuracy=1.0, diff_low=-1.0, diff_high=3.0),
        row("zoomin_lenet", "Zoom-In", paper_accuracy=95.0, memory_mb=9.0, memory_mb_min=8.0, memory_mb_max=10.0,
            paper_memory_mb=2.55),
        row("ats", "ATS", block="NeedleCamelyon", diff_accuracy=0.0, diff_low=-1.0, diff_high=1.0,
            memory_mb=12.0, memory_mb_min=9.0, memory_mb_max=14.0),
        row("zoomin_lenet", "Zoom-In", block="NeedleCamelyon", learned=False),
    ])


def findings_of(found, claim):
    return found[found.claim == claim].set_index("finding")


def test_c1_non_inferiority_needs_the_interval_above_the_margin_and_zoomin_learning():
    found = findings_of(judge({"table1": table1()}, {}, MODELS, "zoomin_lenet"), "C1")
    ats = found.loc["Zoom-In vs ATS"]
    first = ats[ats.block == "Colon Cancer"].iloc[0]
    assert first.verdict == REPRODUCED and (first.low, first.high) == (-2.0, 8.0) and first.measured == 3.0
    assert first.paper == pytest.approx(95.0 - 90.7)
    assert found.loc["Zoom-In vs CNN"].verdict == CONTRADICTED  # CNN better throughout: [-30, -10]
    assert found.loc["Zoom-In vs PatchDrop"].verdict == INCONCLUSIVE  # [-10, 15] reaches past -5
    needle = ats[ats.block == "NeedleCamelyon"].iloc[0]
    assert needle.verdict == INCONCLUSIVE and "did not learn" in needle.reason  # two rows at chance show nothing
    assert not any("Res" in name for name in found.index)  # Zoom-In variants are not baselines


def test_c2_memory_ratio_over_the_whole_range_of_runs():
    found = findings_of(judge({"table1": table1()}, {}, MODELS, "zoomin_lenet"), "C2")
    colon = found[found.block == "Colon Cancer"]
    ats, cnn = colon.loc["ATS / Zoom-In peak memory"], colon.loc["CNN / Zoom-In peak memory"]
    assert ats.verdict == REPRODUCED and ats.low == pytest.approx(25 / 10) and ats.high == pytest.approx(35 / 8)
    assert ats.paper == pytest.approx(15.83 / 2.55)
    assert cnn.verdict == INCONCLUSIVE  # 10.2/10 .. 10.8/8: spans 1.1
    needle = found[found.block == "NeedleCamelyon"].iloc[0]
    assert needle.verdict == INCONCLUSIVE


def test_c2_is_contradicted_when_zoomin_never_saves_a_tenth():
    table = pd.DataFrame([
        row("ats", "ATS", memory_mb=10.0, memory_mb_min=9.9, memory_mb_max=10.1),
        row("zoomin_lenet", "Zoom-In", memory_mb=10.0, memory_mb_min=9.9, memory_mb_max=10.1),
    ])
    found = findings_of(judge({"table1": table}, {}, MODELS, "zoomin_lenet"), "C2")
    assert found.iloc[0].verdict == CONTRADICTED  # at most 10.1 / 9.9 = 1.02


def table4():
    common = {"n": 10}
    return pd.DataFrame([
        row("zoomin_lenet", "Zoom-In", entropy_lambda=1e-5, contrastive_start=None, **common, paper_accuracy=94.0),
        row("zoomin_lambda0", "λ=0", entropy_lambda=0.0, contrastive_start=None, **common, diff_accuracy=-10.0,
            diff_low=-20.0, diff_high=-2.0, diff_p=0.01, paper_accuracy=94.0),
        row("zoomin_lambda1", "λ=1", entropy_lambda=1.0, contrastive_start=None, **common, diff_accuracy=-30.0,
            diff_low=-40.0, diff_high=-20.0),
        row("zoomin_contrastive", "+ contrastive", entropy_lambda=1e-5, contrastive_start=10.0, **common,
            diff_accuracy=-5.0, diff_low=-12.0, diff_high=3.0, paper_accuracy=95.0),
        row("zoomin_n5", "N=5", entropy_lambda=1e-5, contrastive_start=None, n=5, diff_accuracy=-40.0,
            diff_low=-50.0, diff_high=-30.0),
    ])[["block", "dataset", "method", "label", "entropy_lambda", "n", "contrastive_start", "runs",
        "learned", "accuracy_mean", "diff_accuracy", "diff_low", "diff_high", "diff_p", "paper_accuracy"]]


def test_c3_takes_rows_that_switch_one_term_alone(tmp_path):
    table4().to_csv(tmp_path / "table4.csv", index=False)  # through a CSV, as the rule reads it
    found = write_claims({"table4": tmp_path / "table4.csv"}, {}, MODELS, "zoomin_lenet", {}, tmp_path / "c.md",
                         tmp_path / "c.csv")
    c3 = findings_of(found, "C3")
    assert sorted(c3.index) == ["contrastive loss: + contrastive minus Zoom-In", "entropy term: Zoom-In minus λ=0"]
    entropy = c3.loc["entropy term: Zoom-In minus λ=0"]
    assert entropy.verdict == REPRODUCED and (entropy.low, entropy.high) == (2.0, 20.0) and entropy.measured == 10.0
    assert entropy.paper == 0.0
    contrastive = c3.loc["contrastive loss: + contrastive minus Zoom-In"]
    assert contrastive.verdict == INCONCLUSIVE and contrastive.paper == pytest.approx(1.0)


def spearman_inputs(correlated: bool):
    rng = np.random.default_rng(0)
    images = np.repeat(np.arange(20), 16)
    coverage = rng.uniform(0, 1, len(images))
    attention = coverage + rng.normal(0, 0.2, len(images)) if correlated else rng.uniform(0, 1, len(images))
    tiles = pd.DataFrame({"dataset": "needle", "method": "zoomin_lenet", "run": "s0", "image_id": images,
                          "attention": attention, "coverage": coverage})
    result = stats.spearmanr(attention, coverage)
    summary = pd.DataFrame([{"dataset": "needle", "method": "zoomin_lenet", "cells": "all", "tiles": len(tiles),
                             "images": 20, "runs": 1, "spearman_rho": result.statistic, "p_value": result.pvalue}])
    return summary, tiles


def test_c4_needs_the_interval_over_images_above_zero():
    found = judge({}, {"needle": spearman_inputs(True)}, MODELS, "zoomin_lenet", {"needle": "NeedleCamelyon"})
    c4 = found[found.claim == "C4"].iloc[0]
    assert c4.verdict == REPRODUCED and c4.block == "NeedleCamelyon" and 0 < c4.low < c4.measured < c4.high
    flat = judge({}, {"needle": spearman_inputs(False)}, MODELS, "zoomin_lenet")
    assert flat[flat.claim == "C4"].iloc[0].verdict in (INCONCLUSIVE, CONTRADICTED)


@pytest.mark.parametrize(("low", "high", "verdict"), [
    (40.0, 58.0, REPRODUCED),  # below 50 + 10 throughout
    (33.0, 67.0, INCONCLUSIVE),
    (80.0, 95.0, CONTRADICTED),  # it learned
])
def test_c5_needle_mnist_at_chance(low, high, verdict):
    table = pd.DataFrame([row("zoomin_lenet", "Zoom-In", block="NeedleMNIST", accuracy_low=low, accuracy_high=high)])
    found = judge({"appendix_j": table}, {}, MODELS, "zoomin_lenet")
    assert found[found.claim == "C5"].iloc[0].verdict == verdict


def test_claims_without_their_inputs_are_not_run(tmp_path):
    found = write_claims({}, {}, MODELS, "zoomin_lenet", {}, tmp_path / "c.md", tmp_path / "c.csv")
    assert set(found.verdict) == {NOT_RUN} and set(found.claim) == {"C1", "C2", "C3", "C4", "C5"}
    markdown = (tmp_path / "c.md").read_text()
    assert "| C3 |" in markdown and "**not run**" in markdown and "no Table 4" in markdown
    assert pd.read_csv(tmp_path / "c.csv").shape[0] == 5


def test_a_claims_verdict_from_its_findings():
    assert overall([REPRODUCED, REPRODUCED, NOT_RUN]) == REPRODUCED
    assert overall([REPRODUCED, INCONCLUSIVE]) == INCONCLUSIVE
    assert overall([REPRODUCED, CONTRADICTED, INCONCLUSIVE]) == CONTRADICTED
    assert overall([NOT_RUN]) == NOT_RUN
