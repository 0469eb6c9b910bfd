"""Snakemake adapter: one trained run's predictions on the inputs the config lists."""
from zoomin.predict import predict
from zoomin.spec import PredictSettings
from zoomin.workflow_support import run_script

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
