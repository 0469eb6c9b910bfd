"""The whole DAG on a tiny config through the snakemake command line (seconds of training)."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from tests.workflow.helpers import TINY_CONFIG, snakemake

pytestmark = [pytest.mark.workflow, pytest.mark.slow]


@pytest.fixture(scope="module")
def finished_run(tiny_local_run):
    return tiny_local_run


@pytest.mark.parametrize("name", ["table1", "table2"])
def test_tables_have_every_block_and_method_with_finite_values(finished_run, name):
    import yaml

    config = yaml.safe_load(TINY_CONFIG.read_text())
    table = pd.read_csv(finished_run / "results" / f"{name}.csv")
    datasets = {d: ds for d, ds in config["datasets"].items() if ds.get("table", "table1") == name}
    expected = {(ds["block"], m) for ds in datasets.values() for m in ds["methods"]}
    assert expected and set(zip(table.block, table.method)) == expected
    for column in ("accuracy_mean", "gmacs", "memory_mb", "time_ms"):
        assert table[column].map(math.isfinite).all(), column
    assert ((table.accuracy_mean >= 0) & (table.accuracy_mean <= 100)).all()
    assert (table.gmacs > 0).all() and (table.memory_mb > 0).all()
    markdown = (finished_run / "results" / f"{name}.md").read_text()
    for block in {b for b, _ in expected}:
        assert f"## {block}" in markdown


def test_auc_only_for_two_class_datasets(finished_run):
    table = pd.concat([pd.read_csv(finished_run / "results" / f"{name}.csv") for name in ("table1", "table2")])
    two_class = table.dataset.isin(["colon", "needle_camelyon", "camelyon16_synthetic"])
    assert table.auc_mean[two_class].between(0, 1).all()
    assert table.auc_mean[~two_class].isna().all()  # traffic signs, fMoW: several classes


def test_the_slide_dataset_went_through_the_slide_path(finished_run):
    results = finished_run / "results" / "camelyon16_synthetic"
    raw = finished_run / "resources" / "camelyon16_synthetic" / "raw"
    assert (raw / ".complete").is_file() and len(list((raw / "images").glob("*.tif"))) == 6
    assert len(list((results / "slides").glob("*.h5"))) == 6
    assert (finished_run / "logs" / "camelyon16_synthetic" / "download.benchmark.tsv").is_file()


def test_figures_exist(finished_run):
    import yaml

    config = yaml.safe_load(TINY_CONFIG.read_text())
    for dataset in config["datasets"]:
        figure = finished_run / "results" / "figures" / f"attention_{dataset}.png"
        assert figure.stat().st_size > 10_000
    curves = list((finished_run / "results").glob("*/*/curves.png"))  # one per (dataset, method)
    assert len(curves) == sum(len(ds["methods"]) for ds in config["datasets"].values())


FIGURE_RULES = {"plot_memory", "plot_errorbars", "plot_spearman", "plot_views", "plot_pareto", "plot_budget"}


def test_the_config_tables_and_paper_figures_are_made(finished_run):
    import yaml

    config = yaml.safe_load(TINY_CONFIG.read_text())
    for name, spec in config["tables"].items():
        table = pd.read_csv(finished_run / "results" / f"{name}.csv")
        assert [list(row) for row in zip(table.dataset, table.method)] == spec["rows"]
        assert set(spec["settings"]) <= set(table.columns)
        assert (finished_run / "results" / f"{name}.md").read_text().startswith(f"# {spec['title']}")
    figures = finished_run / "results" / "figures"
    figure = config["figures"]
    expected = [f"errorbars_{d}.png" for d in figure["errorbars"]] + [f"views_{d}.png" for d in figure["views"]]
    expected += [f"spearman_{d}.{ext}" for d in figure["spearman"] for ext in ("png", "csv")]
    expected += ["pareto.png", "pareto.csv", "memory.png", "memory_scaling.csv"]
    expected += [f"budget_{d}.png" for d, ds in config["datasets"].items() if ds.get("table", "table1")]
    for name in expected:
        assert (figures / name).stat().st_size > 100, name
    scaling = pd.read_csv(figures / "memory_scaling.csv")
    assert sorted(scaling.image_side.unique()) == figure["memory"]["sides"]
    pareto = pd.read_csv(figures / "pareto.csv")
    assert list(pareto.method) == figure["pareto"]["methods"]
    history = pd.read_csv(finished_run / "results" / "colon" / "zoomin_lenet" / "r0f0" / "history.csv")
    assert (history.mean_unique_tiles > 0).all() and (history.mean_input_mb > 0).all()


def test_claims_judge_every_claim_from_the_tables(finished_run):
    claims = pd.read_csv(finished_run / "results" / "claims.csv")
    assert set(claims.claim) == {"C1", "C2", "C3", "C4", "C5"}
    assert set(claims.verdict) <= {"reproduced", "contradicted", "inconclusive at this size", "not run"}
    # the tiny config has Tables 1 and 2 and Figure 7, no Table 4 and no appendix J table
    assert (claims[claims.claim.isin(["C3", "C5"])].verdict == "not run").all()
    assert (claims[claims.claim == "C1"].verdict != "not run").all()


def test_second_run_is_a_no_op(finished_run):
    result = snakemake(finished_run, "all", "-n", "--cores", "2", "--configfile", str(TINY_CONFIG))
    assert result.returncode == 0, result.stderr
    assert "Nothing to be done" in result.stdout + result.stderr


def _planned_rules(workdir):
    result = snakemake(workdir, "all", "-n", "--quiet", "rules", "--cores", "2", "--configfile", str(TINY_CONFIG))
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    return {line.split()[0] for line in output.splitlines() if line.strip()}, output


def test_editing_plot_and_table_code_reruns_only_figure_and_table_jobs(finished_run):
    """Snakemake compares input checksums, so a mere touch is not a change: the test edits the code."""
    for name, expected in (
        ("report/draw.py", {"plot_curves", "plot_attention"} | FIGURE_RULES),
        ("report/tables.py", {"table"}),
    ):
        code = finished_run / "src" / "zoomin" / name
        original = code.read_text()
        code.write_text(original + "\n# edited by test_workflow\n")
        try:
            planned, output = _planned_rules(finished_run)
        finally:
            code.write_text(original)
        assert expected <= planned, output
        assert not {"train", "build_views", "construct_dataset", "memory_scaling"} & planned, output


def test_editing_a_script_adapter_retrains_nothing(finished_run):
    """profiles/default leaves the `code` trigger out: moving a package module edits the adapters'
    imports, and that must not retrain every run (what re-runs training is its params and inputs)."""
    adapter = finished_run / "workflow" / "scripts" / "train.py"
    original = adapter.read_text()
    adapter.write_text(original + "\n# edited by test_workflow\n")
    try:
        planned, output = _planned_rules(finished_run)
    finally:
        adapter.write_text(original)
    assert "train" not in planned, output


def test_predict_rule_gives_the_evaluation_probabilities(finished_run):
    """The tiny config's `predict` block: every colon image, with the first run of two methods."""
    for method in ("zoomin_lenet", "ats"):
        folder = finished_run / "results" / "predictions" / "colon" / method / "r0f0"
        rows = pd.read_csv(folder / "predictions.csv")
        assert len(rows) == 12 and (rows.sampling == "sample").all()
        for column in ("heatmap", "geojson", "asap"):
            assert all((folder / name).stat().st_size > 100 for name in rows[column])
        metrics = json.loads((finished_run / "results" / "colon" / method / "r0f0" / "metrics.json").read_text())
        by_id = rows.set_index("image_id")
        columns = [c for c in rows.columns if c.startswith("p_")]
        assert metrics["image_ids"]
        for image_id, expected in zip(metrics["image_ids"], metrics["probabilities"]):
            assert by_id.loc[image_id, columns].tolist() == pytest.approx(expected, abs=1e-7)

