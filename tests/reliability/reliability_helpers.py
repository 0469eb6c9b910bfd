"""Helpers of the reliability tests: running the real ``zoomin`` command line.

Everything runs through the real ``zoomin`` command line in subprocesses (one torch thread each,
so the folder stays fast on a 2-core machine and the runs are comparable).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import torch

HERE = Path(__file__).resolve().parent
RESUME_CONFIG = HERE / "resume_config.yaml"
ZOOMIN = [sys.executable, "-m", "zoomin.cli.main"]
MEASURED = ["seconds"]  # wall-clock columns of history.csv: measurements, not results


def zoomin_env(threads: int = 1) -> dict[str, str]:
    """Environment for a ``zoomin`` subprocess: fixed thread count, no colour/progress noise."""
    return dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")


def zoomin(*args: str | Path, cwd: Path, timeout: int = 300, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``zoomin <args>`` to completion; with ``check`` a failure shows its stderr."""
    result = subprocess.run(
        [*ZOOMIN, *map(str, args)], cwd=cwd, env=zoomin_env(), capture_output=True, text=True, timeout=timeout
    )
    if check and result.returncode != 0:
        raise AssertionError(f"zoomin {' '.join(map(str, args))} failed ({result.returncode}):\n{result.stderr}")
    return result


def train_args(views: Path, out: Path, run: str = "r0f0", config: Path = RESUME_CONFIG) -> list[str | Path]:
    """``zoomin train`` arguments writing model.pt/history.csv under ``out`` and checkpoints under out/ckpt."""
    return [
        "train", "--config", config, "--dataset", "colon", "--method", "zoomin_lenet", "--run", run,
        "--views", views, "--out-model", out / "model.pt", "--out-history", out / "history.csv",
        "--checkpoint-dir", out / "ckpt",
    ]


def evaluate_args(views: Path, out: Path, run: str = "r0f0", config: Path = RESUME_CONFIG) -> list[str | Path]:
    return [
        "evaluate", "--config", config, "--dataset", "colon", "--method", "zoomin_lenet", "--run", run,
        "--views", views, "--model", out / "model.pt", "--out-metrics", out / "metrics.json",
    ]


def assert_same_weights(a: Path, b: Path) -> None:
    sa = torch.load(a, map_location="cpu", weights_only=True)
    sb = torch.load(b, map_location="cpu", weights_only=True)
    assert sa["metadata"] == sb["metadata"]
    assert sa["state_dict"].keys() == sb["state_dict"].keys()
    for key in sa["state_dict"]:
        assert torch.equal(sa["state_dict"][key], sb["state_dict"][key]), f"weights differ in {key}"


def assert_same_history(a: Path, b: Path) -> None:
    ha, hb = pd.read_csv(a).drop(columns=MEASURED), pd.read_csv(b).drop(columns=MEASURED)
    pd.testing.assert_frame_equal(ha, hb, check_exact=True)
