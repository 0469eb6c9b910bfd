"""Snakemake adapter: accuracy against peak inference memory per configuration, and the fronts."""
from pathlib import Path

from zoomin.cli.workflow_support import run_script
from zoomin.report.figures import pareto_figure

sm = snakemake  # noqa: F821 (injected by Snakemake)
SHOWN = ("s1", "s2", "tile", "scale", "n")  # the parameters a configuration is told apart by
settings = {
    method: " ".join(f"{key}={params[key]:g}" for key in SHOWN if key in params)
    for method, params in sm.params.settings.items()
}
run_script(
    sm,
    lambda: pareto_figure(
        [tuple(run) for run in sm.params.runs],
        list(sm.input.metrics),
        sm.params.methods,
        settings,
        sm.params.block,
        Path(sm.output.png),
        Path(sm.output.csv),
    ),
)
