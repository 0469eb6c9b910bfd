"""The code stays lint-clean: ruff (errors, import order, bug-prone patterns) over the Python and
snakefmt over the Snakemake files, with the settings of pyproject.toml."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed; `pip install -e '.[test]'` brings it")
    return found


def test_ruff_check_is_clean():
    result = subprocess.run([_tool("ruff"), "check", "--no-cache", "."], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_snakefmt_is_clean():
    result = subprocess.run(
        [_tool("snakefmt"), "--check", "Snakefile", "workflow"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


MAX_MODULE_LINES = 500
MAX_TOP_LEVEL_MODULES = 10


def test_the_package_stays_walkable():
    """Small modules with one job, grouped by stage: a newcomer finds things by the folder's name."""
    package = REPO / "src" / "zoomin"
    long = {str(path.relative_to(package)): n for path in package.rglob("*.py")
            if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"
    top_level = sorted(path.name for path in package.glob("*.py") if path.name != "__init__.py")
    assert len(top_level) <= MAX_TOP_LEVEL_MODULES, top_level
