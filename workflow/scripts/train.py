"""Snakemake adapter: train one (dataset, method, run), then evaluate its best model."""
from pathlib import Path

from zoomin.evaluation import evaluate
from zoomin.spec import RunSpec
from zoomin.training import RunOutputs, train
from zoomin.workflow_support import run_script

sm = snakemake  # noqa: F821 (injected by Snakemake)
spec = RunSpec.from_dict(sm.params.spec)
views = Path(sm.input.views)
outputs = RunOutputs(Path(sm.params.checkpoint_dir), Path(sm.output.model), Path(sm.output.history))


def train_and_evaluate() -> None:
    train(spec, views, outputs)
    evaluate(spec, views, outputs.model, Path(sm.output.metrics))


run_script(sm, train_and_evaluate)
