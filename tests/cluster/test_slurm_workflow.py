"""The tiny-config DAG of the real workflow through SLURM equals the same DAG run locally.

Brings up the single-node test cluster (``slurm-up.sh``), then runs, in two throw-away
copies of the repository and at the same time,

  * ``snakemake results/table3.csv --configfile tests/configs/tiny_config.yaml
    --profile profiles/slurm --profile tests/cluster/profile``  (GPU requests overridden to 0)
  * ``snakemake results/table3.csv --configfile tests/configs/tiny_config.yaml --cores 2``
    (with the test profile's ``set-threads``, so that both runs use the same threads)

and checks that every non-local job went through sbatch (SLURM recorded it as COMPLETED
in partition "debug", its SLURM log exists), that the local rules stayed local, and that the accuracy and FLOPs
columns of the table are identical (time and memory are measurements and may differ). The tiny
config's ``table3`` is Table 1's colon runs of two methods (four runs): the whole DAG through SLURM
would repeat the local whole-DAG test's work without covering more of the executor.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections import Counter

import pytest

from tests.cluster.slurm_helpers import (
    SNAKEMAKE,
    TEST_PROFILE,
    rule_of,
    run_snakemake,
    slurm_job,
    slurm_profile_args,
    submitted_jobs,
)
from tests.workflow.helpers import TINY_CONFIG, copy_workflow

pytestmark = [pytest.mark.cluster, pytest.mark.workflow, pytest.mark.slow]

TARGET = "results/table3.csv"
# rules that must run on the submit host (localrules in the workflow)
LOCAL_RULES = {"table", "plot_curves", "plot_attention"}
# columns of the table that the DAG computes deterministically from the seed
KEYS = ["block", "dataset", "method"]


def _test_profile_threads() -> list[str]:
    """The test profile's set-threads, applied to the local run too, so both runs use
    the same thread counts (and the comparison does not depend on them)."""
    import yaml

    profile = yaml.safe_load((TEST_PROFILE / "config.yaml").read_text())
    threads = profile.get("set-threads") or {}
    return ["--set-threads", *(f"{rule}={n}" for rule, n in threads.items())] if threads else []


def _compared_columns(columns: list[str]) -> list[str]:
    return [c for c in columns if "accuracy" in c or c == "gmacs"]


@pytest.fixture(scope="module")
def both_runs(slurm_cluster, tmp_path_factory):
    if not TINY_CONFIG.is_file():
        pytest.fail(f"{TINY_CONFIG} is missing")
    slurm_dir = copy_workflow(tmp_path_factory.mktemp("slurm"))

    t0 = time.monotonic()
    outcome: dict = {}

    def submit() -> None:  # the SLURM run mostly waits for status checks: run it alongside
        try:
            outcome["slurm"] = run_snakemake(
                [TARGET, "--configfile", str(TINY_CONFIG)] + slurm_profile_args(),
                cwd=slurm_dir,
                timeout=1500,
            )
            outcome["seconds"] = time.monotonic() - t0
        except BaseException as error:  # pytest.fail inside the thread: re-raised below
            outcome["error"] = error

    submitter = threading.Thread(target=submit, daemon=True)
    submitter.start()
    # its output goes to a file (a full pipe would stall it)
    local_dir = copy_workflow(tmp_path_factory.mktemp("local"))
    local_log = open(local_dir / "snakemake-local.log", "w")
    local = subprocess.Popen(
        SNAKEMAKE + [TARGET, "--cores", "2", *_test_profile_threads(), "--configfile", str(TINY_CONFIG)],
        cwd=local_dir,
        stdout=local_log,
        stderr=subprocess.STDOUT,
    )
    try:
        submitter.join(timeout=1600)
        if "error" in outcome:
            raise outcome["error"]
        if "slurm" not in outcome:
            pytest.fail("the SLURM run did not finish within 1600 s")
        slurm = outcome["slurm"]
        slurm_seconds = outcome["seconds"]
        local.wait(timeout=1500)
    finally:
        if local.poll() is None:
            local.kill()
            local.wait()
        local_log.close()
    total = time.monotonic() - t0
    print(
        f"\ntiny DAG through SLURM: {slurm_seconds:.0f} s; with the local run, both done in {total:.0f} s"
    )
    slurm_out = slurm.stdout + slurm.stderr
    local_out = (local_dir / "snakemake-local.log").read_text()
    assert local.returncode == 0, f"local run failed:\n{local_out[-5000:]}"
    assert (local_dir / TARGET).is_file(), f"no {TARGET} in the local run {local_dir}"
    assert slurm.returncode == 0, f"SLURM run failed:\n{slurm_out[-8000:]}"
    return local_dir, slurm_dir, slurm_out


def test_jobs_went_through_sbatch(both_runs) -> None:
    local_dir, slurm_dir, slurm_out = both_runs
    jobs = submitted_jobs(slurm_out)
    assert jobs, f"no sbatch submission reported:\n{slurm_out[-3000:]}"
    per_rule: Counter[str] = Counter()
    for jobid, log in jobs.items():
        info = slurm_job(jobid)
        assert info.get("JobState") == "COMPLETED", info
        assert info.get("Partition") == "debug", info
        assert log.is_file(), f"SLURM log of job {jobid} missing: {log}"
        per_rule[rule_of(log)] += 1

    import pandas as pd

    rows = set(pd.read_csv(local_dir / TARGET)[["dataset", "method"]].itertuples(index=False, name=None))
    local_runs = (p.relative_to(local_dir) for p in (local_dir / "results").glob("*/*/*/metrics.json"))
    runs = sorted(r for r in local_runs if (r.parts[1], r.parts[2]) in rows)
    assert runs, "the local run produced no metrics of the table's rows"
    assert sorted(p.relative_to(slurm_dir) for p in (slurm_dir / "results").glob("*/*/*/metrics.json")) == runs
    # every training run (which evaluates too) was a SLURM job; plots and tables were not
    assert per_rule["train"] == len(runs), per_rule
    assert not LOCAL_RULES & set(per_rule), per_rule
    assert "localrule table:" in slurm_out


def test_table_accuracy_and_gmacs_equal_local_run(both_runs) -> None:
    import pandas as pd

    local_dir, slurm_dir, _ = both_runs
    local = pd.read_csv(local_dir / TARGET).sort_values(KEYS).reset_index(drop=True)
    slurm = pd.read_csv(slurm_dir / TARGET).sort_values(KEYS).reset_index(drop=True)
    assert list(slurm.columns) == list(local.columns)
    columns = _compared_columns(list(local.columns))
    assert {"accuracy_mean", "gmacs"} <= set(columns), local.columns
    pd.testing.assert_frame_equal(slurm[KEYS + columns], local[KEYS + columns], check_exact=True)
