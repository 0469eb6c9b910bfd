"""Snakemake adapter: download a real dataset's raw files, marker last."""
from pathlib import Path

from zoomin.cli.workflow_support import run_script
from zoomin.data.sources import download_dataset

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_script(sm, lambda: download_dataset(sm.params.source, Path(sm.params.raw_dir), dict(sm.params.options)))
