"""Snakemake adapter: evaluate one trained run."""
from pathlib import Path

from zoomin.evaluation import evaluate
from zoomin.spec import RunSpec
from zoomin.workflow_support import run_script

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_script(
    sm,
    lambda: evaluate(
        RunSpec.from_dict(sm.params.spec), Path(sm.input.views), Path(sm.input.model), Path(sm.output.metrics)
    ),
)
