"""Snakemake adapter: Figure 8 (the views a model sees of an image, the object boxed)."""
from pathlib import Path

from zoomin.cli.workflow_support import run_script
from zoomin.config.run import RunSpec
from zoomin.report.figures import views_figure

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_script(
    sm,
    lambda: views_figure(
        RunSpec.from_dict(sm.params.spec), Path(sm.input.views), Path(sm.input.model), Path(sm.output.png)
    ),
)
