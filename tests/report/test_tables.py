"""Tables from run metrics: ROC AUC beside accuracy where the runs have one, empty where not."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from zoomin.report.tables import RunMetrics, TableRow, make_table
from zoomin.training.evaluate import two_class_auc

SLIDES = TableRow("slides", "zoomin_lenet", "Camelyon16", "Zoom-In Network")
SIGNS = TableRow("signs", "zoomin_lenet", "Traffic Signs Recognition", "Zoom-In Network")


def write_metrics(folder, dataset, run, accuracy, auc="absent"):
    metrics = {"seed": int(run[1:]), "accuracy": accuracy, "gflops": 1.0, "peak_memory_mb": 2.0, "time_ms": 3.0,
               "device": "cpu", "epochs": 5}
    if auc != "absent":
        metrics["auc"] = auc
    path = folder / f"{dataset}_{run}.json"
    path.write_text(json.dumps(metrics))
    return RunMetrics(dataset, "zoomin_lenet", run, path)


def test_auc_mean_and_std_where_runs_have_it_empty_elsewhere(tmp_path):
    runs = [
        write_metrics(tmp_path, "slides", "s0", 80.0, 0.9),
        write_metrics(tmp_path, "slides", "s1", 70.0, 0.7),
        write_metrics(tmp_path, "signs", "s0", 60.0, None),  # several classes: evaluation writes null
        write_metrics(tmp_path, "signs", "s1", 50.0),  # a metrics file from before AUC existed
    ]
    table = make_table(runs, [SLIDES, SIGNS], None, tmp_path / "t.csv", tmp_path / "t.md")
    slides, signs = table.iloc[0], table.iloc[1]
    assert slides.auc_mean == pytest.approx(0.8) and slides.auc_std == pytest.approx(0.1414, abs=1e-4)
    assert pd.isna(signs.auc_mean) and pd.isna(signs.auc_std)
    assert list(table.columns[7:11]) == ["accuracy_mean", "accuracy_std", "auc_mean", "auc_std"]
    csv = pd.read_csv(tmp_path / "t.csv")
    assert csv.auc_mean[0] == pytest.approx(0.8) and pd.isna(csv.auc_mean[1])
    assert (tmp_path / "t.csv").read_text().splitlines()[2].split(",")[9:11] == ["", ""]
    markdown = (tmp_path / "t.md").read_text()
    assert "| 0.800 ± 0.141 |" in markdown
    slides_part, signs_part = markdown.split("## Traffic Signs Recognition")
    assert " AUC |" in slides_part and "AUC" not in signs_part  # a block without AUC has no AUC column
    assert "55.0 ± 7.1" in signs_part


def test_one_run_with_auc_has_zero_std(tmp_path):
    runs = [write_metrics(tmp_path, "slides", "s0", 80.0, 0.75)]
    table = make_table(runs, [SLIDES], None, tmp_path / "t.csv", tmp_path / "t.md")
    assert table.auc_mean[0] == 0.75 and table.auc_std[0] == 0.0
    markdown = (tmp_path / "t.md").read_text()
    assert " 80.0 |" in markdown and " 0.750 |" in markdown and "±" not in markdown.split("## ")[1]


def test_two_class_auc_scores_the_second_class():
    probabilities = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.45, 0.55]])
    assert two_class_auc([0, 0, 1, 1], probabilities) == 1.0
    assert two_class_auc([1, 1, 0, 0], probabilities) == 0.0
    assert two_class_auc([0, 1, 1, 0], probabilities) == 0.75
    assert two_class_auc([1, 1, 1, 1], probabilities) is None  # one class: undefined
