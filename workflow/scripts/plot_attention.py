"""Snakemake adapter: attention figure of one test image of a dataset."""
from pathlib import Path

from zoomin.figures import attention_figure
from zoomin.workflow_support import run_script

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_script(
    sm,
    lambda: attention_figure(
        views=Path(sm.input.views),
        model_path=Path(sm.input.model),
        dataset_config=dict(sm.params.dataset_config),
        run=sm.params.run,
        seed=int(sm.params.seed),
        out_png=Path(sm.output.png),
        title=sm.wildcards.dataset,
    ),
)
