"""Snakemake adapter: one trained run's predictions on the inputs the config lists."""
from zoomin.cli.workflow_support import run_script
from zoomin.config.outputs import PredictSettings
from zoomin.predict import predict

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_script(
    sm,
    lambda: predict(
        sm.input.model,
        sm.params.inputs,
        sm.output.folder,
        PredictSettings.from_mapping(sm.params.settings),
        device=sm.params.device,
    ),
)
