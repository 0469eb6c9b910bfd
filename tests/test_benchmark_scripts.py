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


def test_startup_logs_add_up_start_up_setup_and_work_per_rule(tmp_path):
    """``benchmarks/startup.py logs`` on job logs as run_script and the training loop write them."""
    script = load_script("startup")
    train = tmp_path / "logs" / "colon" / "cnn" / "r0f0"
    train.mkdir(parents=True)
    (train / "train.log").write_text(
        "2026-12-07 05:45:29,683 INFO zoomin: rule train, wildcards {'run': 'r0f0'}, 1 thread(s)\n"
        "2026-12-07 05:45:29,684 INFO zoomin: start-up: 3.50 s from the process's start to the rule's work\n"
        "epoch 1/2:   0%|          | 0/15 [00:00<?, ?it/s]\r"
        "2026-12-07 05:45:39,683 INFO zoomin.training.loop: epoch 1: loss 2.8 train acc 0.5 val acc 0.5 (8.0s)\n"
        "2026-12-07 05:45:47,683 INFO zoomin.training.loop: epoch 2: loss 2.8 train acc 0.5 val acc 0.5 (8.0s)\n"
        "2026-12-07 05:45:50,000 INFO zoomin: work: 20.32 s\n"
    )
    (train / "train.benchmark.tsv").write_text("s\th:m:s\n25.0\t0:00:25\n")
    (tmp_path / "logs" / "table1.log").write_text(
        "2026-12-07 05:50:00,000 INFO zoomin: rule table, wildcards {}, 1 thread(s)\n"
        "2026-12-07 05:50:00,000 INFO zoomin: start-up: 1.00 s from the process's start to the rule's work\n"
        "2026-12-07 05:50:01,000 INFO zoomin: work: 1.00 s\n"
    )
    (tmp_path / "logs" / "failed.log").write_text("2026-12-07 05:50:00,000 INFO zoomin: rule plot, wildcards {}\n")

    summary = script.summarise_logs(tmp_path)
    rules = {row["rule"]: row for row in summary["rules"]}
    assert set(rules) == {"train", "table"}  # a job that never finished its work is left out
    assert rules["train"]["startup_s"] == 3.5 and rules["train"]["work_s"] == 20.32
    assert rules["train"]["setup_s"] == pytest.approx(2.0, abs=1e-3)  # epoch 1 began at 05:45:31.683
    assert rules["train"]["benchmark_s"] == 25.0 and rules["table"]["benchmark_s"] is None
    assert rules["train"]["before_work_share"] == pytest.approx(5.5 / 23.82)
    assert summary["before_work_s"] == pytest.approx(6.5, abs=1e-3)


def test_data_path_reads_the_same_patches_with_every_thread_count(tmp_path, capsys):
    script = load_script("data_path")
    rows = script.bench_slides(2048, [(8, 32)], repeats=1, workdir=tmp_path)  # raises if the pixels differ
    assert [row["workers"] for row in rows] == list(script.WORKERS)
    assert all(row["median_ms"] > 0 for row in rows)
