"""Running the real workflow with the `snakemake` command line in a throw-away copy of the repo."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TINY_CONFIG = REPO / "tests" / "configs" / "tiny_config.yaml"
COPIED = ["Snakefile", "workflow", "config", "envs", "profiles", "src", "tests/configs"]


def copy_workflow(dest: Path) -> Path:
    """Copy what the DAG reads (not results) into ``dest``."""
    for name in COPIED:
        source = REPO / name
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(source, target)
    return dest


def snakemake(workdir: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run the snakemake CLI of this interpreter's environment in ``workdir``, with the package of
    ``workdir/src`` (the copy's code, so rules that list package modules as inputs see its files)."""
    bin_dir = Path(sys.executable).parent
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    if (workdir / "src").is_dir():
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(workdir / "src"), os.environ.get("PYTHONPATH")]))
    return subprocess.run(
        [str(bin_dir / "snakemake"), *args],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout,
    )
