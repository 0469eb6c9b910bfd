"""Shared fixtures: one finished run of the tiny whole-DAG config, reused by every test that needs it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.workflow.helpers import TINY_CONFIG, copy_workflow, snakemake

# Tests that must share one pytest-xdist worker: those that use the tiny DAG run (made once per
# worker), and the SLURM tests (one `slurm-up.sh` at a time). Two groups, so that the SLURM tests
# run beside the tiny DAG instead of after it.
XDIST_GROUPS = {
    "tiny_dag": ("tests/workflow/",),
    "slurm": ("tests/cluster/",),
}
GROUPED = tuple(prefix for prefixes in XDIST_GROUPS.values() for prefix in prefixes)


SLOW_MARKS = ("slow", "workflow", "cluster")  # what the fast tier (`pytest -m fast`) leaves out


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook reads the marks
def pytest_collection_modifyitems(config, items):
    for item in items:
        if not any(item.get_closest_marker(name) for name in SLOW_MARKS):
            item.add_marker(pytest.mark.fast)
        for group, prefixes in XDIST_GROUPS.items():
            if item.nodeid.startswith(prefixes):
                item.add_marker(pytest.mark.xdist_group(group))


def pytest_xdist_node_collection_finished(node, ids):
    """Under ``--dist loadgroup`` pytest-xdist tags each grouped test's id with ``@<group>``. Where it
    cannot (pytest 9.2 with xdist 3.8), the SLURM tests would run in two workers at once, two
    ``slurm-up.sh`` racing on /etc/slurm, and the tiny DAG would run twice: stop with the reason."""
    if node.config.getoption("dist") != "loadgroup":
        return
    untagged = [i for i in ids if i.startswith(GROUPED) and "@" not in i]
    if untagged:
        pytest.exit(
            f"pytest-xdist did not apply the xdist_group marks (pytest {pytest.__version__}), e.g. to "
            f"{untagged[0]}. Install the pytest that pyproject.toml pins, or run with -n 0 (no workers).",
            returncode=4,
        )


@pytest.fixture
def single_thread():
    """Tiny nets run several times faster on one thread on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_local_run(tmp_path_factory) -> Path:
    """A repo copy in which `snakemake all --cores 2 --configfile tests/configs/tiny_config.yaml` finished."""
    workdir = copy_workflow(tmp_path_factory.mktemp("tiny_dag"))
    result = snakemake(workdir, "all", "--cores", "2", "--configfile", str(TINY_CONFIG))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return workdir
