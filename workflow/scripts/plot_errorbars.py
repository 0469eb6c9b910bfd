"""Snakemake adapter: Figure 5 (accuracy mean ± std over the runs of a dataset's methods)."""
from pathlib import Path

from zoomin.cli.workflow_support import run_script
from zoomin.report.figures import errorbars_figure

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_script(
    sm,
    lambda: errorbars_figure(
        [tuple(run) for run in sm.params.runs],
        list(sm.input.metrics),
        sm.params.methods,
        sm.params.block,
        sm.input.paper[0] if sm.input.paper else None,
        Path(sm.output.png),
    ),
)
