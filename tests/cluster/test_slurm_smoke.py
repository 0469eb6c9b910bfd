"""Smoke test of the SLURM plumbing: a two-rule workflow through ``--profile profiles/slurm``.

Independent of the zoomin workflow: it checks that the profile, the executor plugin and
the test cluster work together -- jobs are submitted with sbatch, run on the node,
their status is polled without accounting (squeue), and a failing job is reported as
failed instead of hanging the run.
"""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pytest

from tests.cluster.slurm_helpers import rule_of, run_snakemake, slurm_job, slurm_profile_args, submitted_jobs

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

# rule names match the workflow's GPU rules, so the profile's set-resources apply
SNAKEFILE = textwrap.dedent(
    """
    localrules: all

    rule all:
        input: "evaluated.txt"

    rule train:
        output: "trained.txt"
        threads: 1
        resources: gpu=1
        shell: "echo job=$SLURM_JOB_ID host=$(hostname) > {output}"

    rule evaluate:
        input: "trained.txt"
        output: "evaluated.txt"
        shell: "cat {input} > {output}; echo job=$SLURM_JOB_ID >> {output}"

    rule broken:
        output: "broken.txt"
        shell: "echo about to fail; exit 3"
    """
)


@pytest.fixture
def smoke_dir(tmp_path: Path) -> Path:
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    return tmp_path


def test_two_rules_go_through_sbatch(slurm_cluster, smoke_dir: Path) -> None:
    t0 = time.monotonic()
    proc = run_snakemake(slurm_profile_args() + ["all"], cwd=smoke_dir, timeout=600)
    seconds = time.monotonic() - t0
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-5000:]
    print(f"\ntwo-rule workflow through SLURM: {seconds:.1f} s")

    jobs = submitted_jobs(output)
    assert len(jobs) == 2, f"expected 2 sbatch submissions, saw {jobs}\n{output[-3000:]}"
    rules = set()
    for jobid, log in jobs.items():
        info = slurm_job(jobid)
        assert info["JobState"] == "COMPLETED", info
        assert info["Partition"] == "debug", info
        assert info.get("Comment", f"rule_{rule_of(log)}") == f"rule_{rule_of(log)}", info
        rules.add(rule_of(log))
        assert log.is_file(), f"SLURM log {log} missing (slurm-keep-successful-logs)"
    assert rules == {"train", "evaluate"}

    # the shell commands ran inside SLURM jobs, with the ids sbatch reported
    lines = (smoke_dir / "evaluated.txt").read_text().split()
    seen_ids = {tok.split("=", 1)[1] for tok in lines if tok.startswith("job=")}
    assert seen_ids == set(jobs), (seen_ids, jobs)


def test_failed_job_is_reported_not_hung(slurm_cluster, smoke_dir: Path) -> None:
    proc = run_snakemake(slurm_profile_args() + ["broken"], cwd=smoke_dir, timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-3000:]
    jobs = submitted_jobs(output)
    assert len(jobs) == 1, output[-3000:]
    (jobid, log), = jobs.items()
    assert f"SLURM-job '{jobid}' failed" in output, output[-3000:]
    assert slurm_job(jobid)["JobState"] == "FAILED"
    assert "about to fail" in log.read_text()
    assert not (smoke_dir / "broken.txt").exists()
