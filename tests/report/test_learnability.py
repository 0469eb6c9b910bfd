"""The learnability map from the sweep's runs: pooled accuracy with its Wilson interval, the learned
flag against chance, runs that learned alone, the budget each spent, the smallest ratio learned,
and the CSV and figure the rule writes."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from zoomin.report.learnability import SweepRun, collect, learnability_report, smallest_learned, summarise
from zoomin.report.stats import proportion_interval

LABELS = {"cnn_low": "CNN, 1/4", "ats": "ATS"}


def _run(tmp_path: Path, method: str, ratio: float, size: int, run: str, right: int, n: int = 20) -> SweepRun:
    """A run whose first ``right`` of ``n`` balanced test images are predicted right."""
    folder = tmp_path / f"{method}_{ratio}_{size}_{run}"
    folder.mkdir()
    labels = [i % 2 for i in range(n)]
    predictions = [y if i < right else 1 - y for i, y in enumerate(labels)]
    (folder / "metrics.json").write_text(json.dumps({"labels": labels, "predictions": predictions, "epochs": 12}))
    pd.DataFrame({"epoch": [1, 2], "seconds": [1.5, 2.5]}).to_csv(folder / "history.csv", index=False)
    return SweepRun(method, ratio, size, run, folder / "metrics.json", folder / "history.csv", 4, 100)


@pytest.fixture()
def runs(tmp_path):
    out = []
    for ratio in (0.1, 0.01):
        for size in (10, 30):
            out.append(_run(tmp_path, "cnn_low", ratio, size, "s0", 10))
            out.append(_run(tmp_path, "cnn_low", ratio, size, "s1", 11))
            learns = ratio == 0.1 and size == 30
            out.append(_run(tmp_path, "ats", ratio, size, "s0", 20 if learns else 10))
            out.append(_run(tmp_path, "ats", ratio, size, "s1", 19 if learns else 9))
    return out


def test_collect_counts_right_predictions_and_the_budget(runs):
    per_run = collect(runs)
    assert len(per_run) == 16
    first = per_run.iloc[0]
    assert (first.correct, first.predictions, first.chance) == (10, 20, 0.5)
    assert first.object_px == pytest.approx(0.1 * 100**2)
    assert first.epochs == 12 and first.steps == 12 * 3 and first.train_seconds == pytest.approx(4.0)  # ceil(10/4)


def test_a_cell_is_learned_only_when_the_interval_of_its_mean_accuracy_clears_chance(runs):
    summary = summarise(collect(runs), LABELS)
    assert list(summary.method.unique()) == ["cnn_low", "ats"]  # the order of the labels
    cell = summary[(summary.method == "ats") & (summary.ratio == 0.1) & (summary.train_images == 30)].iloc[0]
    low, high = proportion_interval(19, 20)  # the mean 19.5 right of 20 test images, rounded down
    assert (cell.mean_correct, cell.test_images, cell.accuracy) == (19.5, 20, pytest.approx(97.5))
    assert (cell.low, cell.high) == (pytest.approx(100 * low), pytest.approx(100 * high))
    assert cell.learned and cell.runs_learned == 2 and cell.run_accuracies == "100.0 95.0"
    assert cell.label == "ATS" and cell.steps == 12 * 8
    chance_cells = summary[summary.method == "cnn_low"]
    assert not chance_cells.learned.any() and (chance_cells.runs_learned == 0).all()
    ats = summary[summary.method == "ats"]
    assert list(zip(ats.ratio, ats.train_images)) == [(0.1, 10), (0.1, 30), (0.01, 10), (0.01, 30)]
    assert ats.learned.sum() == 1


def test_the_runs_test_images_are_counted_once(tmp_path):
    """Two runs right on 14 of the same 20 test images: 70 %, whose interval on 20 images reaches
    below chance. Pooled as 28 of 40 independent predictions it would not (and the cell would be
    called learned)."""
    runs = [_run(tmp_path, "ats", 0.1, 10, "s0", 14), _run(tmp_path, "ats", 0.1, 10, "s1", 14)]
    cell = summarise(collect(runs), LABELS).iloc[0]
    assert cell.accuracy == pytest.approx(70.0) and cell.low == pytest.approx(100 * proportion_interval(14, 20)[0])
    assert not cell.learned and proportion_interval(28, 40)[0] > 0.5


def test_one_learning_run_of_two_is_told_apart_from_two(tmp_path):
    """One seed at 100 % and one at chance: a mean of 75 % of 20, whose interval clears chance: the
    cell is learned, and runs_learned says that only one run learned."""
    runs = [_run(tmp_path, "ats", 0.1, 10, "s0", 20), _run(tmp_path, "ats", 0.1, 10, "s1", 10)]
    cell = summarise(collect(runs), LABELS).iloc[0]
    assert cell.learned and cell.runs_learned == 1


def test_smallest_learned_ratio_per_method_and_size(runs):
    table = smallest_learned(summarise(collect(runs), LABELS)).set_index(["method", "train_images"])
    assert table.loc[("ats", 30)].smallest_ratio == 0.1
    assert table.loc[("ats", 30)].accuracy == pytest.approx(97.5)
    assert pd.isna(table.loc[("ats", 10)].smallest_ratio)
    assert table.loc[list(zip(["cnn_low"] * 2, [10, 30]))].smallest_ratio.isna().all()


def test_the_rule_writes_the_csv_and_the_map(runs, tmp_path):
    csv, png = tmp_path / "out" / "learnability.csv", tmp_path / "out" / "figures" / "learnability.png"
    learnability_report(runs, LABELS, csv, png, "test sweep")
    written = pd.read_csv(csv)
    assert len(written) == 8 and {"accuracy", "low", "high", "learned", "epochs", "steps", "gflops", "memory_mb"} <= set(written.columns)
    with Image.open(png) as image:
        assert image.format == "PNG" and image.width > image.height  # a panel per method, side by side
