"""Snakemake adapter: train one (dataset, method, run), then evaluate its best model."""
from pathlib import Path

from zoomin.cli.workflow_support import run_script
from zoomin.config.run import RunSpec
from zoomin.training.evaluate import evaluate
from zoomin.training.loop import RunOutputs, train

sm = snakemake  # noqa: F821 (injected by Snakemake)
spec = RunSpec.from_dict(sm.params.spec)
views = Path(sm.input.views)
outputs = RunOutputs(Path(sm.params.checkpoint_dir), Path(sm.output.model), Path(sm.output.history))


def train_and_evaluate() -> None:
    train(spec, views, outputs)
    evaluate(spec, views, outputs.model, Path(sm.output.metrics))


run_script(sm, train_and_evaluate)
