"""Determinism on the CPU: the same config and seed give identical weights, history, accuracy and
FLOPs (time and memory are measurements and may differ), the seed is recorded in every output, and
the seed is what decides the result (another seed gives other weights).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import torch
import yaml

from tests.reliability.reliability_helpers import (
    RESUME_CONFIG,
    assert_same_history,
    assert_same_weights,
    evaluate_args,
    train_args,
    zoomin,
)
from zoomin.config.load import load as load_config
from zoomin.config.runs import run_seed
from zoomin.report.tables import RunMetrics, TableRow, make_table

DETERMINISTIC_METRICS = ["seed", "accuracy", "n_test", "predictions", "labels", "sampling", "gflops", "model_type", "best_epoch"]


def table(run_dir: Path, root: Path) -> pd.DataFrame:
    """table1.csv built by the package from this run's metrics.json, as the workflow's table rule does."""
    metrics = root / "results" / "colon" / "zoomin_lenet" / "r0f0" / "metrics.json"
    metrics.parent.mkdir(parents=True)
    shutil.copy(run_dir / "metrics.json", metrics)
    rows = [TableRow.from_dict(row) for row in load_config(RESUME_CONFIG).table_rows("table1")]
    runs = [RunMetrics("colon", "zoomin_lenet", "r0f0", metrics)]
    return make_table(runs, rows, None, root / "table1.csv", root / "table1.md")


def test_two_runs_same_seed_identical(colon_views, uninterrupted_run, tmp_path):
    second = tmp_path / "second"
    zoomin(*train_args(colon_views, second), cwd=tmp_path)
    zoomin(*evaluate_args(colon_views, second), cwd=tmp_path)

    assert_same_weights(uninterrupted_run / "model.pt", second / "model.pt")
    assert_same_history(uninterrupted_run / "history.csv", second / "history.csv")
    first_metrics = json.loads((uninterrupted_run / "metrics.json").read_text())
    second_metrics = json.loads((second / "metrics.json").read_text())
    for key in DETERMINISTIC_METRICS:
        assert first_metrics[key] == second_metrics[key], f"metrics.json {key} differs between two runs"
    assert first_metrics["gflops"] > 0

    t1 = table(uninterrupted_run, tmp_path / "t1")
    t2 = table(second, tmp_path / "t2")
    for column in ("accuracy_mean", "accuracy_std", "gmacs", "seeds"):
        assert t1[column].tolist() == t2[column].tolist(), f"table1 column {column} differs"
    csv1, csv2 = pd.read_csv(tmp_path / "t1" / "table1.csv"), pd.read_csv(tmp_path / "t2" / "table1.csv")
    assert csv1[["accuracy_mean", "gmacs"]].equals(csv2[["accuracy_mean", "gmacs"]])


def test_seed_recorded_in_every_output(uninterrupted_run):
    seed = load_config(RESUME_CONFIG).run("colon", "zoomin_lenet", "r0f0").seed
    model = torch.load(uninterrupted_run / "model.pt", map_location="cpu", weights_only=True)
    assert model["metadata"]["seed"] == seed
    assert json.loads((uninterrupted_run / "metrics.json").read_text())["seed"] == seed
    history = pd.read_csv(uninterrupted_run / "history.csv")
    assert (history["seed"] == seed).all() and len(history) == 6
    checkpoint = torch.load(uninterrupted_run / "ckpt" / "last.pt", map_location="cpu", weights_only=True)
    assert checkpoint["identity"]["seed"] == seed


def test_another_seed_gives_other_weights(colon_views, uninterrupted_run, tmp_path):
    config = yaml.safe_load(RESUME_CONFIG.read_text())
    config["seed"] = 1
    other_config = tmp_path / "seed1.yaml"
    other_config.write_text(yaml.safe_dump(config))
    other = tmp_path / "seed1"
    zoomin(*train_args(colon_views, other, config=other_config), cwd=tmp_path)
    a = torch.load(uninterrupted_run / "model.pt", map_location="cpu", weights_only=True)
    b = torch.load(other / "model.pt", map_location="cpu", weights_only=True)
    assert b["metadata"]["seed"] == run_seed(config["seed"], "r0f0") != a["metadata"]["seed"]
    assert any(not torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
