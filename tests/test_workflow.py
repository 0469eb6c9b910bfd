"""The whole DAG on a tiny config through the snakemake command line (seconds of training)."""

from __future__ import annotations

import math
import os
import time

import pandas as pd
import pytest

from workflow_helpers import TINY_CONFIG, snakemake

pytestmark = [pytest.mark.workflow, pytest.mark.slow]


@pytest.fixture(scope="module")
def finished_run(tiny_local_run):
    return tiny_local_run


def test_table1_has_every_block_and_method_with_finite_values(finished_run):
    import yaml

    config = yaml.safe_load(TINY_CONFIG.read_text())
    table = pd.read_csv(finished_run / "results" / "table1.csv")
    expected = {(ds["block"], m) for ds in config["datasets"].values() for m in ds["methods"]}
    assert set(zip(table.block, table.method)) == expected
    for column in ("accuracy_mean", "gflops", "memory_mb", "time_ms"):
        assert table[column].map(math.isfinite).all(), column
    assert ((table.accuracy_mean >= 0) & (table.accuracy_mean <= 100)).all()
    assert (table.gflops > 0).all() and (table.memory_mb > 0).all()
    markdown = (finished_run / "results" / "table1.md").read_text()
    for block in {b for b, _ in expected}:
        assert f"## {block}" in markdown


def test_figures_exist(finished_run):
    import yaml

    config = yaml.safe_load(TINY_CONFIG.read_text())
    for dataset in config["datasets"]:
        figure = finished_run / "results" / "figures" / f"attention_{dataset}.png"
        assert figure.stat().st_size > 10_000
    curves = list((finished_run / "results").glob("*/*/*/curves.png"))
    assert len(curves) == sum(
        len(ds["methods"]) * len(ds["runs"].get("seeds", [])) or len(ds["methods"]) * ds["runs"]["folds"]
        for ds in config["datasets"].values()
    )


def test_second_run_is_a_no_op(finished_run):
    result = snakemake(finished_run, "all", "-n", "--cores", "2", "--configfile", str(TINY_CONFIG))
    assert result.returncode == 0, result.stderr
    assert "Nothing to be done" in result.stdout + result.stderr


def test_touching_plot_code_reruns_only_figure_jobs(finished_run):
    plots = finished_run / "src" / "zoomin" / "plots.py"
    now = time.time() + 5
    os.utime(plots, (now, now))
    result = snakemake(
        finished_run, "all", "-n", "--quiet", "rules", "--cores", "2", "--configfile", str(TINY_CONFIG)
    )
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    rules = {line.split()[0] for line in output.splitlines() if line.strip() and line.split()[0].islower()}
    planned = {r for r in ("plot_curves", "plot_attention", "train", "evaluate", "build_views", "table") if r in output}
    assert {"plot_curves", "plot_attention"} <= planned, output
    assert not {"train", "evaluate", "build_views", "construct_dataset"} & rules, output
