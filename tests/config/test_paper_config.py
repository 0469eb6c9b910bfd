"""config/paper.yaml: valid, carries the paper's settings, and plans the whole paper DAG without data."""

from __future__ import annotations

import json
import math
import re

import pandas as pd
import pytest
import yaml

import zoomin.config.load as zconfig
from tests.workflow.helpers import REPO, copy_workflow, snakemake
from zoomin.report.tables import RunMetrics, TableRow, make_table

PAPER = REPO / "config" / "paper.yaml"


@pytest.fixture(scope="module")
def config():
    return yaml.safe_load(PAPER.read_text())


@pytest.fixture(scope="module")
def experiment():
    return zconfig.load(PAPER)


def _params(experiment, dataset, method, keys):
    params = experiment.model(dataset, method).params.to_dict()
    return {key: params[key] for key in keys}


def test_five_paper_datasets_with_the_design_settings(config, experiment):
    datasets = config["datasets"]
    assert {name: ds["source"] for name, ds in datasets.items()} == {
        "colon": "colon_cancer",
        "needle_camelyon": "needle_camelyon",
        "traffic_signs": "traffic_signs",
        "fmow": "fmow",
        "camelyon16": "camelyon16",
    }
    assert {name: ds.get("table", "table1") for name, ds in datasets.items()}["camelyon16"] == "table2"
    colon = experiment.training("colon")
    assert (colon.epochs, colon.batch_size, colon.lr, colon.weight_decay) == (100, 5, 1e-4, 1e-5)
    assert (colon.step_size, colon.gamma, colon.clip_grad_norm) == (30, 0.9, 5.0)
    assert (colon.contrastive_start, colon.entropy_lambda) == (10, 1e-5)
    assert datasets["colon"]["runs"] == {"folds": 10, "repetitions": 5}
    assert _params(experiment, "colon", "zoomin_lenet", ("tile", "subtile", "s1", "s2", "n", "feature")) == {
        "tile": 250, "subtile": 27, "s1": 0.1, "s2": 0.2, "n": 10, "feature": "lenet",
    }
    assert _params(experiment, "colon", "ats", ("scale", "patch", "n")) == {"scale": 0.2, "patch": 27, "n": 10}
    assert experiment.model("colon", "cnn").params.scale == 1.0
    assert experiment.model("needle_camelyon", "zoomin_lenet").params.n == 30
    assert experiment.model("needle_camelyon", "ats").params.n == 30
    assert experiment.model("camelyon16", "zoomin_res").params.n == 100
    assert _params(experiment, "traffic_signs", "ats", ("scale", "patch", "n")) == {"scale": 0.3, "patch": 100, "n": 10}
    traffic = experiment.training("traffic_signs")
    assert (traffic.lr, traffic.entropy_lambda, traffic.class_weights) == (1e-3, 1e-4, "inverse_frequency")
    assert "efficientnet_b0" in datasets["fmow"]["methods"]
    assert experiment.training("camelyon16", "zoomin_res_masks").mask_loss_weight > 0
    assert experiment.training("camelyon16", "zoomin_res").mask_loss_weight == 0
    assert config["resources"]["train"]["gpu"] == 1


def test_bagnet_and_topk_carry_the_reference_settings(experiment):
    bagnet = experiment.model("needle_camelyon", "bagnet").params
    assert (bagnet.scale, bagnet.receptive_field, bagnet.width, bagnet.stage_blocks()) == (0.25, 33, 64, (3, 4, 6, 3))
    needles = experiment.training("needle_camelyon", "bagnet")
    assert (needles.lr, needles.weight_decay, needles.batch_size, needles.clip_grad_norm) == (5e-5, 0.0, 8, None)
    topk = experiment.model("traffic_signs", "topk").params
    assert (topk.patch, topk.k, topk.n_samples, topk.sigma, topk.feature) == (100, 10, 500, 0.05, "ats_traffic")
    assert round(1 / topk.scale) == 3 and topk.sigma_decay_steps == 70_000
    reference = experiment.training("traffic_signs", "topk")
    assert (reference.lr, reference.batch_size, reference.weight_decay, reference.entropy_lambda) == (1e-4, 32, 1e-4, 0.01)
    train_images = 747 - round(0.1 * 747)  # Set1 less the validation tenth
    assert reference.epochs * math.ceil(train_images / reference.batch_size) == pytest.approx(70_000, rel=0.02)


def test_every_configured_row_has_the_papers_numbers(config):
    for name, ds in config["datasets"].items():
        table = ds.get("table", "table1")
        paper = pd.read_csv(REPO / "config" / f"paper_{table}.csv")
        rows = set(zip(paper.block, paper.method))
        for method in ds["methods"]:
            assert (ds["block"], method) in rows, (name, method, table)


def test_table2_joins_the_paper_numbers(config, experiment, tmp_path):
    metrics = []
    for method in config["datasets"]["camelyon16"]["methods"]:
        path = tmp_path / "results" / "camelyon16" / method / "s0" / "metrics.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(
            {"seed": 0, "accuracy": 80.0, "gflops": 1.0, "peak_memory_mb": 50.0, "time_ms": 9.0, "device": "cpu"}
        ))
        metrics.append(RunMetrics("camelyon16", method, "s0", path))
    rows = [TableRow.from_dict(row) for row in experiment.table_rows("table2")]
    table = make_table(
        metrics, rows, REPO / "config" / "paper_table2.csv", tmp_path / "table2.csv", tmp_path / "table2.md"
    )
    paper = dict(zip(table.method, table.paper_accuracy))
    assert pd.isna(paper.pop("ips"))  # a later method: a row of ours, no paper number
    assert pd.isna(paper.pop("zoomin_k3"))  # three stages, the paper's future work: no paper number
    assert paper == {
        "streaming_cnn": 70.6, "clam": 78.0, "mil": 79.9, "mrmil": 81.1, "zoomin_lenet": 81.3, "zoomin_res": 82.6,
        "zoomin_lenet_masks": 88.2, "zoomin_res_masks": 90.8,
    }
    assert "## Camelyon16" in (tmp_path / "table2.md").read_text()


@pytest.mark.workflow
def test_dry_run_plans_the_whole_paper_dag(config, experiment, tmp_path):
    workdir = copy_workflow(tmp_path)
    result = snakemake(
        workdir, "results/table1.csv", "results/table2.csv", "-n", "--configfile", "config/paper.yaml"
    )
    assert result.returncode == 0, result.stderr[-5000:]
    out = result.stdout + result.stderr
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", out, flags=re.MULTILINE))
    sweep = {cell.dataset for cell in experiment.learnability.cells()}  # its own target, not the tables'
    runs = sum(len(ds.methods) * len(ds.runs) for name, ds in experiment.datasets.items() if name not in sweep)
    assert int(counts["train"]) == runs and "evaluate" not in counts  # train evaluates too
    for rule in ("download_dataset", "construct_dataset"):
        assert int(counts[rule]) == 5, rule
    assert int(counts["build_views"]) == 4 and int(counts["index_slide_views"]) == 1  # Camelyon16: slides
    assert int(counts["table"]) == 2
    assert "config/paper_table2.csv" in out and "synthetic" not in out  # paper.yaml replaces the default
    assert "slide_cache" not in out  # Camelyon16's slides are listed once its checkpoint has run
