"""Snakemake adapter: Figure 7 (stage-1 attention against the annotation, Spearman's rho)."""
from pathlib import Path

from zoomin.cli.workflow_support import run_script
from zoomin.config.run import RunSpec
from zoomin.report.figures import spearman_figure

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_script(
    sm,
    lambda: spearman_figure(
        [RunSpec.from_dict(spec) for spec in sm.params.specs],
        list(sm.input.models),
        Path(sm.input.views),
        Path(sm.output.png),
        Path(sm.output.csv),
        Path(sm.output.tiles),
    ),
)
