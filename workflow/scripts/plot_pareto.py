"""Snakemake adapter: accuracy against peak inference memory per configuration, and the fronts."""
from pathlib import Path

from zoomin.cli.workflow_support import run_script
from zoomin.report.figures import pareto_figure

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_script(
    sm,
    lambda: pareto_figure(
        [tuple(run) for run in sm.params.runs],
        list(sm.input.metrics),
        sm.params.methods,
        sm.params.settings,
        sm.params.block,
        Path(sm.output.png),
        Path(sm.output.csv),
    ),
)
