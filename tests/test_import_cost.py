"""Every workflow job is a fresh Python process, so what a job's module imports is paid once per job.

torchvision (about 3 s to import here) is needed only by the EfficientNet baseline, and torch
(about 3 s) not at all by the training-curve plots; these tests keep those imports out of the
modules that the other jobs load.
"""

from __future__ import annotations

import subprocess
import sys

import pytest


def _modules_loaded_by(module: str) -> set[str]:
    code = f"import sys, {module}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize("module", ["zoomin.training.loop", "zoomin.training.evaluate", "zoomin.report.figures"])
def test_training_and_evaluation_jobs_do_not_import_torchvision(module: str) -> None:
    assert "torchvision" not in _modules_loaded_by(module)


def test_curve_plots_do_not_import_torch() -> None:
    assert "torch" not in _modules_loaded_by("zoomin.report.draw")


def test_efficientnet_still_builds() -> None:
    from zoomin.models import build_model

    model = build_model("efficientnet_b0", num_classes=3, scale=0.5)
    assert sum(p.numel() for p in model.parameters()) > 1_000_000
