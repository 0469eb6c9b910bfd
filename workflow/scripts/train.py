"""Snakemake adapter: train one (dataset, method, run)."""
from pathlib import Path

from zoomin.spec import RunSpec
from zoomin.training import RunOutputs, train
from zoomin.workflow_support import run_script

sm = snakemake  # noqa: F821 (injected by Snakemake)
outputs = RunOutputs(Path(sm.params.checkpoint_dir), Path(sm.output.model), Path(sm.output.history))
run_script(sm, lambda: train(RunSpec.from_dict(sm.params.spec), Path(sm.input.views), outputs))
