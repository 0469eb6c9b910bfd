"""The benchmark scripts still run: ``benchmarks/training_step.py`` on a tiny stand-in (no timing checked)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_training_step_trains_and_evaluates_every_method_of_a_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    script = load_script("training_step")
    out = tmp_path / "steps.csv"
    args = ["--device", "cpu", "--epochs", "2", "--n-images", "12", "--datasets", "fmow",
            "--methods", "efficientnet_b0", "ats", "zoomin_lenet", "not_a_method_of_fmow",
            "--work", str(tmp_path / "work"), "--out", str(out)]
    assert script.main(args) == 0

    table = pd.read_csv(out)
    assert list(table["method"]) == ["efficientnet_b0", "ats", "zoomin_lenet"]  # the asked ones, in config order
    assert (table["steps_per_epoch"] >= 1).all()
    for column in ("epoch_s", "ms_per_step", "infer_peak_mb", "gflops"):
        assert all(math.isfinite(v) and v > 0 for v in table[column]), column
    assert table["train_peak_mb"].isna().all()  # measured on CUDA only
    assert out.with_suffix(".md").read_text().count("| fmow") == 3


def test_training_step_counts_the_ops_and_times_a_step_of_each_model_type(tmp_path):
    script = load_script("training_step")
    out = tmp_path / "steps.csv"
    args = ["--steps", "--models", "zoomin", "ats", "--batches", "2", "4", "--min-seconds", "0", "--out", str(out)]
    assert script.main(args) == 0

    table = pd.read_csv(out)
    assert list(zip(table["model"], table["batch"])) == [("zoomin", 2), ("zoomin", 4), ("ats", 2), ("ats", 4)]
    assert (table["ops"] > 100).all() and (table["images_per_s"] > 0).all() and (table["steps_timed"] >= 2).all()
    assert "error" not in table.columns
