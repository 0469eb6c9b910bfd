"""Snakemake adapter: attention figure of one test image of a dataset."""
from pathlib import Path

from zoomin.cli.workflow_support import run_script
from zoomin.config.run import RunSpec
from zoomin.report.figures import attention_figure

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_script(
    sm,
    lambda: attention_figure(
        RunSpec.from_dict(sm.params.spec), Path(sm.input.views), Path(sm.input.model), Path(sm.output.png)
    ),
)
