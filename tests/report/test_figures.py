"""The figure drivers on a small trained run: Figure 4's history, Figure 7's rho, the others drawn; the budget figure."""

from __future__ import annotations

import math
from dataclasses import replace

import pandas as pd
import pytest
import torch
from scipy import stats

import zoomin.config.load as zconfig
from tests.report.test_tables import run_metrics
from tests.workflow.helpers import REPO, TINY_CONFIG
from zoomin.report.figure_data import budget_curves, training_history

pytestmark = pytest.mark.usefixtures("single_thread")


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
            metrics.append(run_metrics(tmp_path, "colon", method, f"r0f{fold}", accuracy, 2.0 + fold).path)
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
