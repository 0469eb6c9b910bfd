"""Tables 3/4 and the paper's other figures: the config's `tables:`/`figures:` blocks, the table and
figure code on small inputs, and what training records for Figure 4."""

from __future__ import annotations

import copy
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from scipy import stats

import zoomin.config.load as zconfig
from tests.workflow.helpers import REPO, TINY_CONFIG
from zoomin.errors import ConfigError
from zoomin.image_access import CountingImage, InMemoryImage
from zoomin.models import build_model
from zoomin.models.output import AttentionMap
from zoomin.report.agreement import cell_coverage, spearman_summary
from zoomin.report.figure_data import budget_curves, pareto_points, training_history
from zoomin.report.tables import RunMetrics, TableRow, make_table
from zoomin.training.loop import tiles_opened

pytestmark = pytest.mark.usefixtures("single_thread")

DEFAULT = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
TINY = yaml.safe_load(TINY_CONFIG.read_text())


def _with(change, base=DEFAULT):
    config = copy.deepcopy(base)
    change(config)
    return config


# ------------------------------------------------------------------------------------ config
def test_a_method_shared_by_tables_is_one_set_of_runs():
    experiment = zconfig.load(REPO / "config" / "config.yaml")
    trained = experiment.trained()
    assert len(trained) == len(set(trained))
    table1 = set(experiment.table("table1").rows)
    table4 = experiment.table("table4").rows
    assert ("colon", "zoomin_lenet") in table1 and ("colon", "zoomin_lenet") in table4  # Table 4's default row
    assert set(experiment.table("table3").rows) & set(experiment.table("table4").rows) == {
        ("colon", "zoomin_n5"), ("colon", "zoomin_lenet"), ("colon", "zoomin_n50")
    }
    run = experiment.run("colon", "zoomin_n50", "r0f1")  # a method only the tables list
    assert run.model.params.n == 50 and run.seed == experiment.run("colon", "zoomin_lenet", "r0f1").seed
    assert experiment.run("colon", "zoomin_contrastive", "r0f0").training.contrastive_start is not None
    assert experiment.table("table1").rows == tuple(
        (d, m) for d, ds in experiment.datasets.items() if ds.table == "table1" for m in ds.methods
    )


def test_table_rows_carry_the_settings_the_table_shows():
    experiment = zconfig.load(REPO / "config" / "config.yaml")
    rows = {(r["dataset"], r["method"]): r for r in experiment.table_rows("table4")}
    assert rows[("colon", "zoomin_lambda0")]["settings"]["entropy_lambda"] == 0.0
    assert rows[("colon", "zoomin_n5")]["settings"]["n"] == 5
    assert rows[("colon", "zoomin_lenet")]["settings"]["contrastive_start"] is None
    assert rows[("needle_camelyon", "zoomin_lenet")]["block"] == "NeedleCamelyon"


def test_a_table_may_take_the_first_runs_only_and_the_runs_it_skips_are_not_trained():
    experiment = zconfig.prepare(_with(lambda c: c["tables"]["table4"].update(runs=1)))
    table4 = experiment.table_runs("table4")
    assert {run for dataset, _, run in table4 if dataset == "colon"} == {"r0f0"}
    assert ("colon", "zoomin_lambda0", "r0f0") in table4 and ("colon", "zoomin_n50", "r0f0") in table4
    assert experiment.runs_used("colon", "zoomin_lambda0") == ("r0f0",)  # only Table 4 shows it
    assert experiment.runs_used("colon", "zoomin_lenet") == ("r0f0", "r0f1", "r0f2")  # Table 1 shows all
    assert experiment.runs_used("colon", "zoomin_n50") == ("r0f0", "r0f1", "r0f2")  # Table 3 and the sweep
    every = zconfig.prepare(_with(lambda c: c["tables"]["table4"].pop("runs", None)))
    assert len(every.table_runs("table4")) == len(table4) + 2 * 6  # 3 folds of the 6 colon rows
    assert every.runs_used("colon", "zoomin_lambda0") == ("r0f0", "r0f1", "r0f2")


BAD_TABLES = {
    "a table taking no runs": (lambda c: c["tables"]["table4"].update(runs=0), "tables.table4.runs"),
    "unknown dataset in a row": (
        lambda c: c["tables"]["table3"]["rows"].append(["imagenet", "ats"]), "tables.table3.rows[5]"),
    "unknown method in a row": (
        lambda c: c["tables"]["table3"]["rows"].append(["colon", "vit"]), "tables.table3.rows[5]"),
    "a row twice": (lambda c: c["tables"]["table3"]["rows"].append(["colon", "ats"]), "tables.table3.rows[5]"),
    "a table named table1": (lambda c: c["tables"].update(table1=c["tables"]["table3"]), "tables.table1"),
    "unknown setting": (lambda c: c["tables"]["table3"].update(settings=["colour"]), "tables.table3.settings"),
    "pareto of an unknown method": (
        lambda c: c["figures"]["pareto"]["methods"].append("vit"), "figures.pareto.methods"),
    "spearman of an unknown dataset": (lambda c: c["figures"]["spearman"].append("mnist"), "figures.spearman"),
    "a table-1 dataset without methods": (lambda c: c["datasets"]["colon"].pop("methods"), "datasets.colon.methods"),
}


@pytest.mark.parametrize("case", sorted(BAD_TABLES))
def test_bad_tables_and_figures_are_refused_naming_the_key(case):
    change, key = BAD_TABLES[case]
    with pytest.raises(ConfigError) as info:
        zconfig.prepare(_with(change))
    assert key in str(info.value)


def test_every_row_of_tables_3_and_4_has_the_papers_numbers():
    experiment = zconfig.load(REPO / "config" / "config.yaml")
    for name in ("table3", "table4", "appendix_j"):
        paper = pd.read_csv(REPO / "config" / f"paper_{name}.csv")
        keys = set(zip(paper.block, paper.method))
        for row in experiment.table_rows(name):
            assert (row["block"], row["method"]) in keys, (name, row["method"])


# ------------------------------------------------------------------------------------ tables
def _metrics(tmp_path: Path, dataset: str, method: str, run: str, accuracy: float, memory: float) -> RunMetrics:
    path = tmp_path / dataset / method / run / "metrics.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"seed": int(run[-1]), "accuracy": accuracy, "gflops": 0.2, "peak_memory_mb": memory,
                                "time_ms": 3.0, "device": "cpu", "epochs": 20}))
    return RunMetrics(dataset, method, run, path)


def test_table3_joins_the_paper_numbers_and_shows_the_settings(tmp_path):
    experiment = zconfig.load(REPO / "config" / "config.yaml")
    rows = [TableRow.from_dict(r) for r in experiment.table_rows("table3")]
    runs = [
        _metrics(tmp_path, "colon", row.method, f"r0f{fold}", 60.0 + 10 * fold + i, 2.0 + i)
        for i, row in enumerate(rows) for fold in range(3)
    ]
    table = make_table(runs, rows, REPO / "config" / "paper_table3.csv", tmp_path / "t3.csv", tmp_path / "t3.md",
                       "Table 3 title")
    assert list(table.method) == [row.method for row in rows]  # the config's order
    assert list(table.n) == [5, 10, 50, 10, 50]
    assert list(table.paper_n) == list(table.n)  # each row joined to the paper's row of the same N
    assert table.set_index("method").loc["ats_n50", "paper_memory_mb"] == 25.77
    assert table.accuracy_mean.tolist() == pytest.approx([70.0 + i for i in range(5)])
    assert table.accuracy_std.tolist() == pytest.approx([10.0] * 5)
    markdown = (tmp_path / "t3.md").read_text()
    assert markdown.startswith("# Table 3 title")
    header = next(line for line in markdown.splitlines() if line.startswith("| Method"))
    cells = [cell.strip() for cell in header.strip("|").split("|")]
    assert cells[:3] == ["Method", "N", "Accuracy (%) [95 % CI]"] and "N, paper" in cells and "Time, paper (ms)" in cells
    assert "contradicts Table 1" in markdown  # App. H's colon accuracies are flagged
    assert pd.read_csv(tmp_path / "t3.csv").shape[0] == 5


def test_table4_shows_the_contrastive_setting_of_ours_and_the_papers(tmp_path):
    experiment = zconfig.load(REPO / "config" / "config.yaml")
    rows = [TableRow.from_dict(r) for r in experiment.table_rows("table4")]
    runs = [_metrics(tmp_path, row.dataset, row.method, "s0", 50.0, 2.0) for row in rows]
    make_table(runs, rows, REPO / "config" / "paper_table4.csv", tmp_path / "t4.csv", tmp_path / "t4.md")
    markdown = (tmp_path / "t4.md").read_text()
    blocks = ("Colon Cancer", "NeedleCamelyon", "Camelyon16")
    assert all(f"## {block}" in markdown for block in blocks)
    lines = [line for line in markdown.splitlines() if line.startswith("| Zoom-In Network ")]
    # one base row per block, the loss off in ours and in the paper's "No" row
    assert len(lines) == len(blocks) and all(line.count("off") == 2 for line in lines)
    assert any("after epoch" in line for line in markdown.splitlines() if "contrastive" in line)


# ------------------------------------------------------------------------------------ figure data
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


# ------------------------------------------------------------------------------------ training records
def test_training_records_the_tiles_opened_and_the_values_read():
    torch.manual_seed(0)
    model = build_model("zoomin", 2, tile=16, subtile=5, s1=0.25, s2=0.5, n=3)
    rng = np.random.default_rng(0)
    images = [CountingImage(InMemoryImage(rng.integers(0, 256, (64, 48, 3), dtype=np.uint8))) for _ in range(2)]
    out = model(images, generator=torch.Generator().manual_seed(1))
    opened = tiles_opened(out)
    assert opened == [int((a.counts > 0).sum()) for a in out.attention]
    assert all(1 <= k <= 3 for k in opened)
    for image, tiles in zip(images, opened):
        # stage-1 view (16x12 px) + one 8x8 stage-2 view per tile opened + the 5x5 sub-tiles read
        sub_tiles = len(out.attention[images.index(image)].sampled.centres)
        assert image.values == 3 * (16 * 12 + tiles * 8 * 8 + sub_tiles * 5 * 5)
    ats = build_model("ats", 2, scale=0.25, patch=5, n=3)
    assert tiles_opened(ats(images, generator=torch.Generator().manual_seed(1))) == []


@pytest.fixture(scope="module")
def needle_run(tmp_path_factory):
    """One epoch of the tiny config's Zoom-In on a 12-image NeedleCamelyon stand-in with masks."""
    from zoomin.data.synthetic import generate
    from zoomin.data.view_cache import build_view_cache
    from zoomin.training.loop import RunOutputs, train

    root = tmp_path_factory.mktemp("needle")
    experiment = zconfig.load(TINY_CONFIG)
    spec = experiment.run("needle_camelyon", "zoomin_lenet", "s0")
    spec = replace(spec, training=spec.training.replace(epochs=1, contrastive_start=None))
    generate("needle_camelyon", root / "constructed", 1, progress=False, n_images=12, image_size=256)
    views = build_view_cache(root / "constructed", experiment.cache_scales("needle_camelyon", False),
                             root / "views.h5", progress=False)
    train(spec, views, RunOutputs(root / "ckpt", root / "model.pt", root / "history.csv"))
    return spec, views, root


@pytest.mark.slow
def test_history_has_the_tiles_and_input_memory_per_epoch(needle_run):
    spec, _, root = needle_run
    history = pd.read_csv(root / "history.csv")
    tiles = (256 // spec.model.params.tile) ** 2
    assert 1 <= history.mean_unique_tiles.iloc[0] <= min(spec.model.params.n, tiles)
    assert history.mean_input_mb.iloc[0] > 0


@pytest.mark.slow
def test_spearman_figure_writes_scipys_rho_of_its_tiles(needle_run, tmp_path):
    from zoomin.report.figures import spearman_figure

    spec, views, root = needle_run
    summary = spearman_figure([spec], [root / "model.pt"], views, tmp_path / "f.png", tmp_path / "s.csv",
                              tmp_path / "tiles.csv")
    tiles = pd.read_csv(tmp_path / "tiles.csv")
    written = pd.read_csv(tmp_path / "s.csv").set_index("cells")
    assert len(tiles) > 0 and set(tiles.image_id) and (tiles.coverage >= 0).all()
    assert tiles.groupby("image_id").attention.sum().round(5).eq(1.0).all()  # every tile of each image
    expected = stats.spearmanr(tiles.attention, tiles.coverage).statistic
    assert written.loc["all", "spearman_rho"] == pytest.approx(expected, rel=1e-5)
    assert summary.loc[0, "tiles"] == len(tiles)
    assert (tmp_path / "f.png").stat().st_size > 10_000


@pytest.mark.slow
def test_the_other_figures_are_drawn(needle_run, tmp_path):
    from zoomin.measure.scaling import memory_vs_side
    from zoomin.report.figures import errorbars_figure, memory_figure, pareto_figure, views_figure

    spec, views, root = needle_run
    methods = {"zoomin_lenet": {"label": "Zoom-In", "model": "zoomin"}, "ats": {"label": "ATS", "model": "ats"}}
    runs, metrics = [], []
    for method in methods:
        for fold, accuracy in enumerate((60.0, 80.0)):
            runs.append(("colon", method, f"r0f{fold}"))
            metrics.append(_metrics(tmp_path, "colon", method, f"r0f{fold}", accuracy, 2.0 + fold).path)
    errorbars_figure(runs, metrics, methods, "Colon Cancer", REPO / "config" / "paper_figure5.csv", tmp_path / "e.png")
    points = pareto_figure(runs, metrics, methods, {}, "Colon Cancer", tmp_path / "p.png", tmp_path / "p.csv")
    assert list(points.accuracy_mean) == [70.0, 70.0] and pd.read_csv(tmp_path / "p.csv").on_front.all()
    scaling, skipped = memory_vs_side((64, 96), torch.device("cpu"), seed=0, repeats=1, warmup=0, slow_seconds=5.0)
    assert not skipped and set(scaling.method) == {"zoomin", "ats_published", "ats_lazy", "cnn"}
    scaling.to_csv(tmp_path / "scaling.csv", index=False)
    history = [("needle_camelyon", "zoomin_lenet", "s0")]
    memory_figure(history, [root / "history.csv"], methods, tmp_path / "scaling.csv", tmp_path / "m.png", 16.0)
    views_figure(spec, views, root / "model.pt", tmp_path / "v.png")
    for name in ("e", "p", "m", "v"):
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000, name
    assert not math.isnan(scaling.peak_memory_mb.sum())


# ------------------------------------------------------------------------------------ budget figure
def test_budget_curves_pair_accuracy_with_cumulative_compute(tmp_path):
    from zoomin.report.figures import budget_figure

    methods = {"zoomin_lenet": {"label": "Zoom-In", "model": "zoomin"}, "cnn": {"label": "CNN", "model": "cnn"}}
    zoomin = pd.DataFrame({"epoch": [1, 2, 3], "train_accuracy": [0.5, 0.75, 1.0], "val_accuracy": [0.5, 0.6, 0.9],
                           "steps": [15, 30, 45], "train_gmacs": [2.0, 4.0, 6.0]})
    cnn = pd.DataFrame({"epoch": [1], "train_accuracy": [0.5], "val_accuracy": [float("nan")], "steps": [15],
                        "train_gmacs": [40.0]})  # one epoch: no validation
    old = pd.DataFrame({"epoch": [1, 2], "train_accuracy": [0.5, 0.5], "val_accuracy": [0.5, 0.5]})  # no compute
    paths = []
    for name, frame in (("z", zoomin), ("c", cnn), ("o", old)):
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
        paths.append(tmp_path / f"{name}.csv")
    runs = [("colon", "zoomin_lenet", "r0f0"), ("colon", "cnn", "r0f0"), ("colon", "cnn", "r0f1")]
    curves = budget_curves(training_history(runs, paths, methods))
    validation = curves[curves.set == "validation"]
    assert list(validation.train_gmacs) == [2.0, 4.0, 6.0] and list(validation.accuracy) == [50.0, 60.0, 90.0]
    training = curves[curves.set == "training"]
    assert list(zip(training.label, training.train_gmacs, training.accuracy)) == [
        ("Zoom-In", 2.0, 50.0), ("Zoom-In", 4.0, 75.0), ("Zoom-In", 6.0, 100.0), ("CNN", 40.0, 50.0)]
    budget_figure(runs, paths, methods, "Colon Cancer", tmp_path / "budget.png")
    assert (tmp_path / "budget.png").stat().st_size > 10_000
