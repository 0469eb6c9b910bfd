"""`snakemake --report` on a finished run of the tiny config: one self-contained HTML file
that embeds Table 1 and the figures.

Snakemake 9 writes the report's results as a JSON object in ``<script id="results">var
results = {...};</script>``: one entry per output marked with ``report()`` in the workflow,
keyed by its path, with its category, rendered caption, MIME type and the file itself as a
base64 ``data:`` URI. The test reads that object back and decodes the embedded files, so it
fails if an output loses its ``report()`` marking, if a caption does not render, or if the
embedded bytes are not the files the run made.
"""

from __future__ import annotations

import base64
import io
import json
import re
import shutil

import pandas as pd
import pytest
import yaml

from tests.workflow.helpers import TINY_CONFIG, snakemake

pytestmark = [pytest.mark.workflow, pytest.mark.slow]

REPORT = "results/report.html"
README_REPORT = ("--report", REPORT, "built")  # the README's command
_RESULTS = re.compile(r'<script id="results">\s*var results = (\{.*?\});\s*</script>', re.S)
_CATEGORIES = re.compile(r'<script id="categories">\s*var categories = (\{.*?\});\s*</script>', re.S)


def _embedded(entry: dict) -> bytes:
    """The bytes of a result embedded as ``data:<mime>;charset=...;filename=...;base64,<data>``."""
    header, sep, payload = entry["data_uri"].partition(";base64,")
    assert header.startswith("data:") and sep, entry["data_uri"][:120]
    return base64.b64decode(payload)


def _in_category(categories: dict, name: str) -> list[str]:
    """The result paths of a report category, over all its subcategories ("Other" when none)."""
    return [path for paths in categories.get(name, {}).values() for path in paths]


@pytest.fixture(scope="module")
def report(tiny_local_run):
    """(run directory, results object, categories object, HTML) of the report of the tiny run."""
    result = snakemake(tiny_local_run, *README_REPORT, "--configfile", str(TINY_CONFIG), timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    html = (tiny_local_run / REPORT).read_text()
    results_js, categories_js = _RESULTS.search(html), _CATEGORIES.search(html)
    assert results_js and categories_js, f"no results/categories script in {REPORT} (Snakemake's format changed?)"
    return tiny_local_run, json.loads(results_js.group(1)), json.loads(categories_js.group(1)), html


def test_report_embeds_table1_with_every_block_and_method(report):
    workdir, results, categories, _ = report
    config = yaml.safe_load(TINY_CONFIG.read_text())
    assert "results/table1.csv" in _in_category(categories, "Tables"), categories
    entry = results["results/table1.csv"]
    assert entry["mime_type"] == "text/csv"
    assert entry["job_properties"]["rule"] == "table"
    assert "Table table1: test accuracy" in entry["caption"]  # workflow/report/table.rst, rendered
    embedded = _embedded(entry)
    assert embedded == (workdir / "results" / "table1.csv").read_bytes()
    table = pd.read_csv(io.BytesIO(embedded))
    expected = {
        (ds["block"], m) for ds in config["datasets"].values() if ds.get("table", "table1") == "table1"
        for m in ds["methods"]
    }
    assert set(zip(table.block, table.method)) == expected


def test_report_embeds_the_attention_figures_and_training_curves(report):
    workdir, results, categories, _ = report
    config = yaml.safe_load(TINY_CONFIG.read_text())
    attention = {f"results/figures/attention_{dataset}.png" for dataset in config["datasets"]}
    assert set(_in_category(categories, "Attention")) == attention, categories
    curves_on_disk = {
        str(path.relative_to(workdir)) for path in (workdir / "results").glob("*/*/curves.png")
    }
    assert curves_on_disk
    assert set(_in_category(categories, "Training curves")) == curves_on_disk, categories
    for path in sorted(attention | curves_on_disk):
        entry = results[path]
        assert entry["mime_type"] == "image/png", path
        assert entry["caption"].strip(), f"{path}: empty caption"
        png = _embedded(entry)
        assert png.startswith(b"\x89PNG\r\n\x1a\n"), path
        assert png == (workdir / path).read_bytes(), path
    dataset = next(iter(config["datasets"]))
    caption = results[f"results/figures/attention_{dataset}.png"]["caption"]
    assert f"Attention on a test image of {dataset}" in caption


def test_report_embeds_the_paper_figures_with_captions(report):
    workdir, results, categories, _ = report
    figures = set(_in_category(categories, "Figures"))
    config = yaml.safe_load(TINY_CONFIG.read_text())
    expected = {"results/figures/memory.png", "results/figures/pareto.png", "results/figures/pareto.csv"}
    expected |= {f"results/figures/errorbars_{d}.png" for d in config["figures"]["errorbars"]}
    expected |= {f"results/figures/views_{d}.png" for d in config["figures"]["views"]}
    expected |= {f"results/figures/spearman_{d}.{e}" for d in config["figures"]["spearman"] for e in ("png", "csv")}
    expected |= {f"results/figures/budget_{d}.png" for d, ds in config["datasets"].items() if ds.get("table", "table1")}
    assert figures == expected, categories
    for path in sorted(figures):
        entry = results[path]
        assert entry["caption"].strip(), f"{path}: empty caption"
        assert _embedded(entry) == (workdir / path).read_bytes(), path
    assert "Spearman" in results[f"results/figures/spearman_{config['figures']['spearman'][0]}.png"]["caption"]
    assert "results/table3.csv" in _in_category(categories, "Tables")


def test_the_readme_report_command_works_after_the_quick_start_alone(tiny_local_run, tmp_path):
    """The Quick start builds Table 1 only; a report of `all` then refuses ("marked for report but does
    not exist"). The README's command reports what is built: here a copy of the finished run with
    what Table 1 does not build taken away, as the Quick start leaves it."""
    from tests.workflow.helpers import REPO

    assert " ".join(README_REPORT) in (REPO / "README.md").read_text()
    workdir = tmp_path / "quick_start"
    shutil.copytree(tiny_local_run, workdir, symlinks=True, ignore=shutil.ignore_patterns(REPORT.split("/")[-1]))
    config = yaml.safe_load(TINY_CONFIG.read_text())
    table1_datasets = [d for d, ds in config["datasets"].items() if ds.get("table", "table1") == "table1"]
    for path in [*workdir.glob("results/table[!1]*"), *workdir.glob("results/claims*"), *workdir.glob("results/predictions")]:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    for path in workdir.glob("results/figures/*"):
        kept = {f"{figure}_{d}.png" for figure in ("attention", "budget") for d in table1_datasets}
        if path.name not in kept | {"errorbars_colon.png"}:
            path.unlink()
    for path in workdir.glob("results/*/*/curves.png"):
        if path.parts[-3] not in table1_datasets:
            path.unlink()
    everything = snakemake(workdir, "--report", REPORT, "--configfile", str(TINY_CONFIG), timeout=600)
    assert everything.returncode != 0 and "marked for report but does not exist" in everything.stderr
    result = snakemake(workdir, *README_REPORT, "--configfile", str(TINY_CONFIG), timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    results = json.loads(_RESULTS.search((workdir / REPORT).read_text()).group(1))
    assert "results/table1.csv" in results and "results/table2.csv" not in results


def test_report_embeds_the_claims(report):
    workdir, results, categories, _ = report
    assert set(_in_category(categories, "Claims")) == {"results/claims.md", "results/claims.csv"}, categories
    entry = results["results/claims.csv"]
    assert "reproduced, contradicted" in " ".join(entry["caption"].split())  # workflow/report/claims.rst
    assert _embedded(entry) == (workdir / "results" / "claims.csv").read_bytes()


def test_workflow_extra_installs_what_the_report_needs():
    """The test environment has pygments anyway (pytest needs it), so the report test above
    cannot notice if ``pip install -e ".[workflow]"`` stops installing it; this does."""
    import tomllib

    from tests.workflow.helpers import REPO

    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["workflow"]
    snakemake_req = next(req for req in extra if re.match(r"snakemake\b(?!-)", req))
    assert re.match(r"snakemake\[[^\]]*\breports\b", snakemake_req) or any(
        re.match(r"pygments\b", req, re.I) for req in extra
    ), f"the workflow extra must install pygments for `snakemake --report`: {extra}"
