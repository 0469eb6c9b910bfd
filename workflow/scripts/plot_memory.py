"""Snakemake adapter: Figure 4 (tiles and input memory per image in training; memory vs side)."""
from pathlib import Path

from zoomin.cli.workflow_support import run_script
from zoomin.report.figures import memory_figure, tiles_in_image

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_script(
    sm,
    lambda: memory_figure(
        [tuple(run) for run in sm.params.runs],
        list(sm.input.histories),
        sm.params.methods,
        sm.input.scaling,
        Path(sm.output.png),
        tiles_in_image(Path(sm.input.views), sm.params.tile) if sm.params.tile else None,
        sm.params.title,
    ),
)
