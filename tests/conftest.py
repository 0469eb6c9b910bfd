"""Shared fixtures: one finished run of the tiny whole-DAG config, reused by every test that needs it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from workflow_helpers import TINY_CONFIG, copy_workflow, snakemake  # noqa: E402


@pytest.fixture(scope="session")
def tiny_local_run(tmp_path_factory) -> Path:
    """A repo copy in which `snakemake all --cores 2 --configfile tests/data/tiny_config.yaml` finished."""
    workdir = copy_workflow(tmp_path_factory.mktemp("tiny_dag"))
    result = snakemake(workdir, "all", "--cores", "2", "--configfile", str(TINY_CONFIG))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return workdir
