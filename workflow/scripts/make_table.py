"""Snakemake adapter: aggregate the runs' metrics into a table (CSV + Markdown)."""
from pathlib import Path

from zoomin.tables import RunMetrics, make_table
from zoomin.workflow_support import run_script

sm = snakemake  # noqa: F821 (injected by Snakemake)
runs = [RunMetrics(*identity, Path(path)) for identity, path in zip(sm.params.runs, sm.input.metrics)]
run_script(
    sm,
    lambda: make_table(
        runs, dict(sm.params.datasets), dict(sm.params.methods), sm.input.paper, Path(sm.output.csv), Path(sm.output.md)
    ),
)
