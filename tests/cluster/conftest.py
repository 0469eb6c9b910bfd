"""Fixtures for the tests that run Snakemake against a real, single-node SLURM.

The session fixture ``slurm_cluster`` brings the cluster up with
``tests/cluster/slurm-up.sh up`` and stops, at the end of the session, only the daemons
that it started itself.

The tests never install anything unless asked to: only with the environment variable
ZOOMIN_TEST_INSTALL_SLURM=1 (which .ci/run exports) does ``slurm-up.sh up`` install
Debian's munge and SLURM (apt-get) when they are missing. Without it a machine that has
them runs the tests, and one that lacks them skips them.

The tests are skipped, with the reason printed, when
  * the environment variable ZOOMIN_SKIP_CLUSTER=1 is set,
  * munge/SLURM are not installed and ZOOMIN_TEST_INSTALL_SLURM is not 1,
  * the session is not root (the script writes /etc/slurm and starts daemons),
  * the SLURM executor plugin is not installed,
  * the packages cannot be installed (apt unreachable, not Debian),
  * a SLURM not started by the script already runs on this machine.
A cluster that was installed but does not come up is a test failure, not a skip.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest

from tests.cluster.slurm_helpers import SLURM_UP

# exit codes of slurm-up.sh that mean "this machine cannot host the test cluster"
_SKIP_CODES = {
    2: "not root",
    3: "cannot install munge/SLURM (apt unreachable or not Debian)",
    4: "a SLURM setup not managed by tests/cluster/slurm-up.sh exists on this machine",
    6: "munge/SLURM not installed",
}
# opt-in: let slurm-up.sh install the missing packages (root, apt-get); .ci/run sets it
INSTALL_VAR = "ZOOMIN_TEST_INSTALL_SLURM"


@dataclass(frozen=True)
class SlurmCluster:
    """A running test cluster; ``up_seconds`` is how long ``slurm-up.sh up`` took."""

    up_seconds: float
    started_here: bool


def _skip(reason: str) -> None:
    # printed as well, so that the reason shows in CI logs even without -rs
    print(f"\nSKIP cluster tests: {reason}", file=sys.stderr)
    pytest.skip(reason)


def _script(action: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SLURM_UP), action],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def slurm_cluster():
    """Bring the single-node SLURM up for the session; stop what we started at the end."""
    if os.environ.get("ZOOMIN_SKIP_CLUSTER") == "1":
        _skip("ZOOMIN_SKIP_CLUSTER=1")
    if not sys.platform.startswith("linux"):
        _skip("the test cluster needs Linux")
    may_install = os.environ.get(INSTALL_VAR) == "1"
    check = _script("check", timeout=60)
    if check.returncode not in (0, 6):
        pytest.fail(f"slurm-up.sh check failed (rc {check.returncode}):\n{check.stdout}\n{check.stderr}")
    if check.returncode == 6 and not may_install:
        # the script's message names what is missing and how to opt in
        _skip(check.stderr.strip().removeprefix("slurm-up: "))
    if os.geteuid() != 0:
        _skip("not root: slurm-up.sh writes /etc/slurm and starts system daemons")
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        _skip("snakemake-executor-plugin-slurm is not installed")

    was_up = _script("status", timeout=60).returncode == 0
    t0 = time.monotonic()
    proc = _script("up")
    up_seconds = time.monotonic() - t0
    sys.stderr.write(proc.stdout + proc.stderr)
    if proc.returncode in _SKIP_CODES:
        _skip(f"{_SKIP_CODES[proc.returncode]}: {proc.stderr.strip()}")
    if proc.returncode != 0:
        pytest.fail(f"slurm-up.sh up failed (rc {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    print(f"\nslurm cluster up in {up_seconds:.1f} s", file=sys.stderr)
    try:
        yield SlurmCluster(up_seconds=up_seconds, started_here=not was_up)
    finally:
        if not was_up:
            down = _script("down", timeout=120)
            sys.stderr.write(down.stdout + down.stderr)
