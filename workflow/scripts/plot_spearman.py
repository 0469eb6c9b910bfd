"""Snakemake adapter: Figure 7 (stage-1 attention against the annotation, Spearman's rho)."""
from pathlib import Path

from zoomin.figures import spearman_figure
from zoomin.spec import RunSpec
from zoomin.workflow_support import run_script

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
