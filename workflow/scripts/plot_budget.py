"""Snakemake adapter: validation accuracy against training compute for a dataset's table methods."""
from pathlib import Path

from zoomin.cli.workflow_support import run_script
from zoomin.report.figures import budget_figure

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_script(
    sm,
    lambda: budget_figure(
        [tuple(run) for run in sm.params.runs], list(sm.input.histories), sm.params.methods, sm.params.block,
        Path(sm.output.png),
    ),
)
