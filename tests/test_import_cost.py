"""Every workflow job is a fresh Python process, so what a job's module imports is paid once per job.

Importing torch takes about 3 s here, torch._dynamo (which every torch.optim optimiser imports on
construction) another 2-3 s, torchvision about 3 s, matplotlib with seaborn (and through it
scipy.stats) about 3 s, pandas half a second (benchmarks/README.md, "Job start-up"). These tests
pin, for each kind of job, the heavy packages its adapter (workflow/scripts/) must not import
before its work starts, so that a job does not pay for another job's libraries; and, for the
training and table jobs, that the work itself does not import them either.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "workflow" / "scripts"

# Job kinds by what they need. A new adapter must be placed in one of them (test below).
NO_TORCH = {"torch", "torchvision", "matplotlib"}
DATA_JOBS = NO_TORCH | {"pandas", "scipy.stats", "seaborn"}
FORBIDDEN_AT_START: dict[str, set[str]] = {
    # data preparation: no model, no table
    "construct_dataset": DATA_JOBS,
    "download_dataset": DATA_JOBS,
    "build_views": DATA_JOBS,
    "index_slide_views": DATA_JOBS,
    "slide_cache": DATA_JOBS,
    # tables and claims read CSV and JSON files
    "make_table": NO_TORCH | {"seaborn"},
    "make_claims": NO_TORCH | {"seaborn", "scipy"},
    "learnability": NO_TORCH | {"seaborn"},  # the learnability sweep's table and figure
    # figures import their drawing code when they draw; those that run no model never import torch
    "plot_curves": {"torch", "torchvision"},
    "plot_budget": NO_TORCH,
    "plot_errorbars": NO_TORCH,
    "plot_pareto": NO_TORCH,
    "plot_memory": NO_TORCH,
    # figures that run a trained model: torch when drawn, never torchvision up front
    "plot_attention": NO_TORCH,
    "plot_spearman": NO_TORCH,
    "plot_views": NO_TORCH,
    # training (with its evaluation), prediction and the memory measurement run models: torchvision
    # only when an EfficientNet is built, no tables or plots
    "train": {"torchvision", "pandas", "matplotlib", "seaborn", "scipy", "sklearn"},
    "predict": {"torchvision", "pandas", "seaborn", "sklearn"},
    "memory_scaling": {"torchvision", "matplotlib", "seaborn", "sklearn"},
}


def adapter_imports(name: str) -> str:
    """The import statements at the top level of ``workflow/scripts/<name>.py``: what its job loads
    before calling the package (the rest of an adapter needs Snakemake's ``snakemake`` object)."""
    tree = ast.parse((SCRIPTS / f"{name}.py").read_text())
    return "\n".join(ast.unparse(node) for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom))


def _modules_after(code: str) -> set[str]:
    """The modules loaded after running ``code`` in a fresh interpreter."""
    code += "\nimport sys\nprint('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split())


def _modules_loaded_by(module: str) -> set[str]:
    return _modules_after(f"import {module}")


def test_every_adapter_has_a_job_kind():
    adapters = {path.stem for path in SCRIPTS.glob("*.py")}
    assert adapters == set(FORBIDDEN_AT_START), (
        "place each workflow/scripts adapter in FORBIDDEN_AT_START with the packages its job must not load: "
        f"unlisted {sorted(adapters - set(FORBIDDEN_AT_START))}, gone {sorted(set(FORBIDDEN_AT_START) - adapters)}"
    )


@pytest.mark.parametrize("name", sorted(FORBIDDEN_AT_START))
def test_adapter_imports_only_what_its_job_needs(name: str) -> None:
    loaded = _modules_after(adapter_imports(name))
    assert not FORBIDDEN_AT_START[name] & loaded, f"{name}.py's imports load {sorted(FORBIDDEN_AT_START[name] & loaded)}"


@pytest.mark.parametrize("module", ["zoomin.training.loop", "zoomin.training.evaluate", "zoomin.report.figures"])
def test_training_and_evaluation_jobs_do_not_import_torchvision(module: str) -> None:
    assert "torchvision" not in _modules_loaded_by(module)


def test_curve_plots_do_not_import_torch() -> None:
    assert "torch" not in _modules_loaded_by("zoomin.report.draw")


def test_a_table_job_never_imports_torch(tmp_path):
    """The whole table job, its work included: a table of two runs with per-image results."""
    for seed, predictions in ((0, [0, 1, 1, 0]), (1, [0, 1, 0, 0])):
        metrics = {"seed": seed, "accuracy": 25.0 * (2 + seed), "gflops": 1.0, "peak_memory_mb": 2.0,
                   "time_ms": 3.0, "device": "cpu", "epochs": 5, "labels": [0, 1, 1, 1],
                   "predictions": predictions, "image_ids": ["a", "b", "c", "d"],
                   "probabilities": [[0.8, 0.2] if p == 0 else [0.3, 0.7] for p in predictions]}
        (tmp_path / f"s{seed}.json").write_text(json.dumps(metrics))
    code = adapter_imports("make_table") + textwrap.dedent(
        f"""
        out = Path({str(tmp_path)!r})
        runs = [RunMetrics("signs", "zoomin_lenet", run, out / f"{{run}}.json") for run in ("s0", "s1")]
        row = TableRow("signs", "zoomin_lenet", "Traffic Signs Recognition", "Zoom-In Network")
        make_table(runs, [row], None, out / "t.csv", out / "t.md")
        assert (out / "t.md").exists()
        """
    )
    loaded = _modules_after(code)
    assert not {"torch", "matplotlib", "seaborn"} & loaded


@pytest.mark.slow
def test_a_training_job_loads_no_table_or_plot_library(tmp_path):
    """A whole training job, its evaluation included: one epoch of Zoom-In on a tiny view cache."""
    from zoomin.data.sources import construct_dataset
    from zoomin.data.view_cache import build_view_cache

    construct_dataset("synthetic", None, tmp_path / "constructed", name="colon",
                      params={"kind": "colon", "n_images": 12, "image_size": 96, "seed": 0})
    build_view_cache(tmp_path / "constructed", [0.125, 0.25], tmp_path / "views.h5", progress=False)
    code = adapter_imports("train") + textwrap.dedent(
        f"""
        from zoomin.config.run import MeasureConfig, ModelSpec, RunSettings, TrainingConfig
        from zoomin.models.registry import model_type
        out = Path({str(tmp_path)!r})
        params = model_type("zoomin").make_params({{"tile": 48, "subtile": 16, "n": 4, "s1": 0.125, "s2": 0.25}})
        spec = RunSpec(dataset="colon", method="zoomin", run="r0f0", seed=0, model=ModelSpec("zoomin", params),
                       training=TrainingConfig(epochs=1, batch_size=4), measure=MeasureConfig(repeats=1, warmup=0),
                       settings=RunSettings(device="cpu"), n_folds=2, reference_class="negative")
        train(spec, out / "views.h5", RunOutputs(out / "ckpt", out / "model.pt", out / "history.csv"))
        evaluate(spec, out / "views.h5", out / "model.pt", out / "metrics.json")
        assert (out / "metrics.json").exists()
        """
    )
    loaded = _modules_after(code)
    assert not {"pandas", "matplotlib", "seaborn", "scipy", "sklearn", "torchvision"} & loaded


def test_efficientnet_still_builds() -> None:
    from zoomin.models import build_model

    model = build_model("efficientnet_b0", num_classes=3, scale=0.5)
    assert sum(p.numel() for p in model.parameters()) > 1_000_000
