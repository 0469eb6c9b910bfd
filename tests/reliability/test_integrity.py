"""Integrity: checkpoints and models are loaded with ``weights_only=True``, and targets whose
dataset, method or run wildcard is not a configured name (or is a path or a shell fragment) are
matched by no rule, so no such string reaches a job.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.workflow.helpers import REPO, copy_workflow, snakemake


def test_torch_load_is_weights_only_everywhere():
    """Checkpoints and models can carry pickled code; every torch.load in the package must refuse it."""
    src = REPO / "src"
    calls = [
        (path, line)
        for path in src.rglob("*.py")
        for line in path.read_text().splitlines()
        if "torch.load(" in line
    ]
    assert calls, "no torch.load found: the check is looking in the wrong place"
    for path, line in calls:
        assert "weights_only=True" in line, f"{path}: {line.strip()}"


@pytest.fixture(scope="module")
def workflow_copy(tmp_path_factory) -> Path:
    return copy_workflow(tmp_path_factory.mktemp("wildcards"))


@pytest.mark.parametrize(
    "target",
    [
        "results/imagenet/zoomin_lenet/r0f0/metrics.json",  # unknown dataset
        "results/colon/zoomin_lenet/r0f0;touch pwned/model.pt",  # shell fragment in the run id
        "results/colon/zoomin_lenet/nested/r0f0/model.pt",  # path-like wildcard
    ],
)
def test_targets_outside_the_wildcard_constraints_match_no_rule(workflow_copy, target):
    """``No rule to produce <target>`` (MissingRuleException) comes from DAG building, after the
    Snakefile and config were read and validated, so it is the constraints that refuse the target."""
    result = snakemake(workflow_copy, target, "-n", "--configfile", "tests/configs/tiny_config.yaml")
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "MissingRuleException" in output and f"No rule to produce {target}" in output, output
    assert not (workflow_copy / "pwned").exists() and not (workflow_copy / "results").exists()
