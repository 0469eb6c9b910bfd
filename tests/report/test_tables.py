"""Tables end to end from synthetic metrics: every interval, rate, flag and comparison against
values worked out by hand (Wilson and t-table values, exact binomial sums)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

import zoomin.config.load as zconfig
from tests.workflow.helpers import REPO
from zoomin.errors import UserError
from zoomin.report.tables import RunMetrics, TableRow, make_table
from zoomin.training.evaluate import two_class_auc

SLIDES = TableRow("slides", "zoomin_lenet", "Camelyon16", "Zoom-In Network")
SIGNS = TableRow("signs", "zoomin_lenet", "Traffic Signs Recognition", "Zoom-In Network")


def write_metrics(folder, dataset, run, accuracy, auc="absent", method="zoomin_lenet", **extra):
    metrics = {"seed": int(run[-1]), "accuracy": accuracy, "gflops": 1.0, "peak_memory_mb": 2.0, "time_ms": 3.0,
               "device": "cpu", "epochs": 5, **extra}
    if auc != "absent":
        metrics["auc"] = auc
    path = folder / f"{dataset}_{method}_{run}.json"
    path.write_text(json.dumps(metrics))
    return RunMetrics(dataset, method, run, path)


def images_run(folder, dataset, method, run, labels, predictions, ids, history=None, **extra):
    """A run with per-image results; its accuracy and (two classes) AUC as evaluate computes them."""
    correct = sum(p == y for p, y in zip(predictions, labels))
    probabilities = [[0.8, 0.2] if p == 0 else [0.3, 0.7] for p in predictions]
    entry = write_metrics(
        folder, dataset, run, 100.0 * correct / len(labels), method=method, predictions=predictions, labels=labels,
        image_ids=ids, probabilities=probabilities, **extra,
    )
    return RunMetrics(entry.dataset, entry.method, entry.run, entry.path, history)


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
    csv = pd.read_csv(tmp_path / "t.csv")
    assert csv.auc_mean[0] == pytest.approx(0.8) and pd.isna(csv.auc_mean[1])
    # two runs, no per-image results: the interval is the t-interval alone, 0.8 -+ 12.706 * 0.1, clipped to [0, 1]
    assert (slides.auc_low, slides.auc_high) == (0.0, 1.0)
    # accuracy: 75 -+ 12.706 * 5 = [11.47, 138.5], clipped at 100
    assert slides.accuracy_low == pytest.approx(75 - 12.706 * 5, abs=0.01) and slides.accuracy_high == 100.0
    markdown = (tmp_path / "t.md").read_text()
    slides_part, signs_part = markdown.split("## Traffic Signs Recognition")
    assert " AUC [95 % CI] |" in slides_part and "AUC [" not in signs_part  # no AUC column without AUCs
    assert " 55.0 [" in signs_part  # mean of 60 and 50 with its t-interval
    assert " 2 (< 3) |" in signs_part  # fewer than 3 runs: said in the Runs column


def test_one_run_with_nothing_per_image_shows_its_value_alone(tmp_path):
    runs = [write_metrics(tmp_path, "slides", "s0", 80.0, 0.75)]
    table = make_table(runs, [SLIDES], None, tmp_path / "t.csv", tmp_path / "t.md")
    assert table.auc_mean[0] == 0.75 and table.auc_std[0] == 0.0 and pd.isna(table.accuracy_low[0])
    row = next(line for line in (tmp_path / "t.md").read_text().splitlines() if line.startswith("| Zoom-In"))
    assert " 80.0 |" in row and " 0.750 |" in row and " ? |" in row  # no interval: learned unknown


def test_one_run_of_sixteen_slides_has_the_wilson_interval_and_learns(tmp_path):
    labels = [0] * 8 + [1] * 8
    run = images_run(tmp_path, "slides", "zoomin_lenet", "s0", labels, labels, [f"i{k}" for k in range(16)])
    table = make_table([run], [SLIDES], None, tmp_path / "t.csv", tmp_path / "t.md")
    row = table.iloc[0]
    # Wilson 95 % for 16/16: [80.6, 100]; majority 8 of 16
    assert row.accuracy_low == pytest.approx(80.6, abs=0.05) and row.accuracy_high == pytest.approx(100.0)
    assert row.majority_rate == 50.0 and row.learned and row.n_images == 16
    assert row.auc_mean is None or pd.isna(row.auc_mean)  # this synthetic metrics file has no auc
    assert " 100.0 [80.6, 100.0] |" in (tmp_path / "t.md").read_text()


def test_folds_take_the_t_interval_and_replicates_count_each_image_once(tmp_path):
    ids = [f"i{k}" for k in range(30)]
    labels = [k % 2 for k in range(30)]
    folds = []
    for fold, wrong in enumerate((4, 3, 2)):  # 60, 70, 80 % on three disjoint folds of 10 images
        part = slice(10 * fold, 10 * fold + 10)
        predictions = [1 - y if k < wrong else y for k, y in enumerate(labels[part])]
        folds.append(images_run(tmp_path, "colon", "zoomin_lenet", f"r0f{fold}", labels[part], predictions, ids[part]))
    replicates = [
        images_run(tmp_path, "signs", "zoomin_lenet", f"s{seed}", labels[:10], labels[:10], ids[:10]) for seed in range(3)
    ]
    colon = TableRow("colon", "zoomin_lenet", "Colon Cancer", "Zoom-In Network")
    table = make_table(folds + replicates, [colon, SIGNS], None, tmp_path / "t.csv", tmp_path / "t.md")
    folds_row, replicate_row = table.iloc[0], table.iloc[1]
    # folds: t-interval 70 -+ 4.303 * 10 / sqrt(3) = [45.16, 94.84], wider than Wilson of 21/30 = [52.1, 83.3]
    assert folds_row.accuracy_low == pytest.approx(45.16, abs=0.01)
    assert folds_row.accuracy_high == pytest.approx(94.84, abs=0.01)
    assert folds_row.n_images == 30 and not folds_row.learned  # 45.2 is below the majority rate 50
    # replicates, all right: the t-interval is a point (100); 10 distinct images: Wilson 10/10 = [72.2, 100]
    # (pooling the three runs as 30/30 would claim [88.6, 100])
    assert replicate_row.accuracy_low == pytest.approx(72.25, abs=0.05) and replicate_row.n_images == 10
    assert replicate_row.runs == 3 and replicate_row.learned


def paired_runs(tmp_path, runs, better=8, worse=2, ties=30, dataset="slides"):
    """Row and reference on the same 40 images, ``runs`` identical seed replicates: the row alone
    right on ``better`` images, the reference alone on ``worse``, both right on the others."""
    n = better + worse + ties
    labels = [k % 2 for k in range(n)]
    ids = [f"i{k}" for k in range(n)]
    row = [1 - y if better <= k < better + worse else y for k, y in enumerate(labels)]
    ref = [1 - y if k < better else y for k, y in enumerate(labels)]
    out = []
    for seed in range(runs):
        out.append(images_run(tmp_path, dataset, "cnn", f"s{seed}", labels, row, ids))
        out.append(images_run(tmp_path, dataset, "zoomin_lenet", f"s{seed}", labels, ref, ids))
    return out


CNN = TableRow("slides", "cnn", "Camelyon16", "CNN")


def test_paired_comparison_is_mcnemars_exact_test_per_image(tmp_path):
    runs = paired_runs(tmp_path, runs=1)
    table = make_table(runs, [CNN, SLIDES], None, tmp_path / "t.csv", tmp_path / "t.md", reference="zoomin_lenet",
                       reference_label="Zoom-In Network")
    cnn, zoomin = table.iloc[0], table.iloc[1]
    assert cnn.diff_accuracy == pytest.approx(100 * (8 - 2) / 40)  # 95 % against 80 %
    assert (cnn.images_better, cnn.images_worse) == (8, 2)
    assert cnn.diff_p == pytest.approx(2 * (1 + 10 + 45) / 1024)  # exact binomial, 2 of 10 discordant
    # Bonett-Price for 8 vs 2 discordant of 40 (by hand: [-1.29, 29.86] points)
    assert cnn.diff_low == pytest.approx(-1.29, abs=0.02) and cnn.diff_high == pytest.approx(29.86, abs=0.02)
    assert cnn.paired_runs == 1
    assert pd.isna(zoomin.diff_accuracy) and zoomin.reference == "zoomin_lenet"
    markdown = (tmp_path / "t.md").read_text()
    assert "vs Zoom-In Network (points)" in markdown and " +15.0 (p=0.11) |" in markdown
    assert " reference |" in markdown


def test_replicated_images_are_not_counted_once_per_run_in_the_test(tmp_path):
    runs = paired_runs(tmp_path, runs=3)
    table = make_table(runs, [CNN, SLIDES], None, tmp_path / "t.csv", tmp_path / "t.md", reference="zoomin_lenet")
    cnn = table.iloc[0]
    # pooled over three runs it would be 24 vs 6 discordant pairs, p = 0.0014; each image once: 8 vs 2
    assert cnn.diff_p == pytest.approx(0.109375) and cnn.paired_runs == 3
    assert cnn.diff_accuracy == pytest.approx(15.0)


def test_methods_tested_on_different_images_are_refused(tmp_path):
    runs = [
        images_run(tmp_path, "slides", "cnn", "s0", [0, 1], [0, 1], ["a", "b"]),
        images_run(tmp_path, "slides", "zoomin_lenet", "s0", [0, 1], [0, 1], ["a", "c"]),
    ]
    with pytest.raises(UserError, match="different images"):
        make_table(runs, [CNN, SLIDES], None, tmp_path / "t.csv", tmp_path / "t.md", reference="zoomin_lenet")


def test_gmacs_budget_and_memory_range(tmp_path):
    history = tmp_path / "history.csv"
    pd.DataFrame({"epoch": [1, 2], "steps": [15, 30], "train_gmacs": [2.0, 4.5]}).to_csv(history, index=False)
    runs = [
        images_run(tmp_path, "slides", "zoomin_lenet", "s0", [0, 1], [0, 1], ["a", "b"], history, gmacs=0.3,
                   peak_memory_mb=5.0),
        images_run(tmp_path, "slides", "zoomin_lenet", "s1", [0, 1], [0, 1], ["a", "b"], history, peak_memory_mb=7.0),
    ]
    table = make_table(runs, [SLIDES], None, tmp_path / "t.csv", tmp_path / "t.md")
    row = table.iloc[0]
    assert row.gmacs == pytest.approx((0.3 + 1.0 / 2) / 2)  # gmacs where given, else gflops / 2
    assert (row.memory_mb_min, row.memory_mb, row.memory_mb_max) == (5.0, 6.0, 7.0)
    assert (row.steps, row.train_gmacs) == (30, 4.5)
    markdown = (tmp_path / "t.md").read_text()
    assert "GMACs (paper's unit)" in markdown and " 5 (30) |" in markdown


def test_a_metrics_file_without_the_numbers_is_named(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"accuracy": 50.0}))
    with pytest.raises(UserError, match="metrics.json: no seed"):
        make_table([RunMetrics("slides", "zoomin_lenet", "s0", path)], [SLIDES], None, tmp_path / "t.csv",
                   tmp_path / "t.md")


def test_two_class_auc_scores_the_second_class():
    probabilities = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.45, 0.55]])
    assert two_class_auc([0, 0, 1, 1], probabilities) == 1.0
    assert two_class_auc([1, 1, 0, 0], probabilities) == 0.0
    assert two_class_auc([0, 1, 1, 0], probabilities) == 0.75
    assert two_class_auc([1, 1, 1, 1], probabilities) is None  # one class: undefined


def run_metrics(tmp_path: Path, dataset: str, method: str, run: str, accuracy: float, memory: float) -> RunMetrics:
    path = tmp_path / dataset / method / run / "metrics.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"seed": int(run[-1]), "accuracy": accuracy, "gflops": 0.2, "peak_memory_mb": memory,
                                "time_ms": 3.0, "device": "cpu", "epochs": 20}))
    return RunMetrics(dataset, method, run, path)


def test_table3_joins_the_paper_numbers_and_shows_the_settings(tmp_path):
    experiment = zconfig.load(REPO / "config" / "config.yaml")
    rows = [TableRow.from_dict(r) for r in experiment.table_rows("table3")]
    runs = [
        run_metrics(tmp_path, "colon", row.method, f"r0f{fold}", 60.0 + 10 * fold + i, 2.0 + i)
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
    runs = [run_metrics(tmp_path, row.dataset, row.method, "s0", 50.0, 2.0) for row in rows]
    make_table(runs, rows, REPO / "config" / "paper_table4.csv", tmp_path / "t4.csv", tmp_path / "t4.md")
    markdown = (tmp_path / "t4.md").read_text()
    blocks = ("Colon Cancer", "NeedleCamelyon", "Camelyon16")
    assert all(f"## {block}" in markdown for block in blocks)
    lines = [line for line in markdown.splitlines() if line.startswith("| Zoom-In Network ")]
    # one base row per block, the loss off in ours and in the paper's "No" row
    assert len(lines) == len(blocks) and all(line.count("off") == 2 for line in lines)
    assert any("after epoch" in line for line in markdown.splitlines() if "contrastive" in line)
