"""Helpers for the SLURM tests: run snakemake, parse submissions, ask slurmctld about jobs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SLURM_UP = REPO / "tests" / "cluster" / "slurm-up.sh"
SLURM_PROFILE = REPO / "profiles" / "slurm"
TEST_PROFILE = REPO / "tests" / "cluster" / "profile"
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
STATE = Path(os.environ.get("ZOOMIN_SLURM_STATE", "/var/tmp/zoomin-slurm"))
JOBCOMP = STATE / "log" / "jobcomp.txt"


def run_snakemake(
    args: list[str], cwd: Path, timeout: float = 900, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run snakemake in ``cwd``; a timeout (the plugin hanging on status checks) fails the test."""
    full_env = dict(os.environ)
    # the user settings of profiles/slurm must not leak into the tests
    for key in ("ZOOMIN_SLURM_PARTITION", "ZOOMIN_SLURM_GPU_PARTITION", "ZOOMIN_SLURM_ACCOUNT"):
        full_env.pop(key, None)
    full_env.update(env or {})
    try:
        return subprocess.run(
            SNAKEMAKE + args,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=full_env,
        )
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = (exc.stderr or b"").decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        pytest.fail(f"snakemake did not finish within {timeout} s:\n{out[-5000:]}\n{err[-5000:]}")


def slurm_profile_args() -> list[str]:
    """--profile arguments: the real SLURM profile, then the test-cluster overrides."""
    return ["--profile", str(SLURM_PROFILE), "--profile", str(TEST_PROFILE)]


_SUBMITTED = re.compile(r"Job \S+ has been submitted with SLURM jobid (\d+) \(log: (\S+)\)")


def submitted_jobs(snakemake_output: str) -> dict[str, Path]:
    """SLURM job ids (and their log files) that the plugin reported as submitted via sbatch."""
    return {m.group(1): Path(m.group(2)) for m in _SUBMITTED.finditer(snakemake_output)}


def _fields(line: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for token in line.split():
        key, sep, value = token.partition("=")
        if sep:
            fields[key] = value
    return fields


def slurm_job(jobid: str) -> dict[str, str]:
    """What SLURM recorded about a job: ``scontrol show job`` while slurmctld still holds it
    (MinJobAge=300 s after it ended), else its line in the job-completion log that
    slurm-up.sh configures (jobcomp/filetxt). Empty if SLURM never saw the job."""
    proc = subprocess.run(
        ["scontrol", "show", "job", "-o", jobid], capture_output=True, text=True
    )
    if proc.returncode == 0 and proc.stdout.strip():
        return _fields(proc.stdout)
    record: dict[str, str] = {}
    if JOBCOMP.is_file():
        for line in JOBCOMP.read_text().splitlines():
            fields = _fields(line)
            if fields.get("JobId") == jobid:
                record = fields  # the last record wins (job ids restart with a new state dir)
    return record


def rule_of(slurm_log: Path) -> str:
    """The rule a SLURM job ran, from its log path .snakemake/slurm_logs/rule_<rule>/[<wildcards>/]<id>.log."""
    for part in slurm_log.parts:
        if part.startswith("rule_"):
            return part.removeprefix("rule_")
    raise ValueError(f"no rule_<name> directory in {slurm_log}")
