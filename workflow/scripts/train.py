"""Snakemake adapter: train one (dataset, method, run)."""
from pathlib import Path

from zoomin.training import TrainingJob, train
from zoomin.workflow_support import run_script

sm = snakemake  # noqa: F821 (injected by Snakemake)
job = TrainingJob(
    views=Path(sm.input.views),
    model_type=sm.params.model_type,
    model_params=dict(sm.params.model_params),
    training=dict(sm.params.training),
    dataset_config=dict(sm.params.dataset_config),
    run=sm.wildcards.run,
    seed=int(sm.params.seed),
    checkpoint_dir=Path(sm.params.checkpoint_dir),
    out_model=Path(sm.output.model),
    out_history=Path(sm.output.history),
    device=sm.params.device,
    mixed_precision=bool(sm.params.mixed_precision),
)
run_script(sm, lambda: train(job))
