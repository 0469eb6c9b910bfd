"""Snakemake adapter: evaluate one trained run."""
from pathlib import Path

from zoomin.evaluation import evaluate
from zoomin.workflow_support import run_script

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_script(
    sm,
    lambda: evaluate(
        views=Path(sm.input.views),
        model_path=Path(sm.input.model),
        dataset_config=dict(sm.params.dataset_config),
        run=sm.wildcards.run,
        seed=int(sm.params.seed),
        sampling=sm.params.training["sampling_at_test"],
        out_metrics=Path(sm.output.metrics),
        device=sm.params.device,
        repeats=int(sm.params.measure.get("repeats", 5)),
        warmup=int(sm.params.measure.get("warmup", 2)),
    ),
)
