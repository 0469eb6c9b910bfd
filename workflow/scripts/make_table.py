"""Snakemake adapter: aggregate metrics into a table (CSV + Markdown)."""
from pathlib import Path

from zoomin.tables import make_table
from zoomin.workflow_support import run_script

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_script(
    sm,
    lambda: make_table(
        list(sm.input.metrics), dict(sm.params.datasets), dict(sm.params.methods),
        sm.input.paper, Path(sm.output.csv), Path(sm.output.md),
    ),
)
