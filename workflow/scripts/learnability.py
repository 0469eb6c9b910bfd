"""Snakemake adapter: the learnability map (CSV and figure) from the sweep's runs."""
from pathlib import Path

from zoomin.cli.workflow_support import run_script
from zoomin.report.learnability import SweepRun, learnability_report

sm = snakemake  # noqa: F821 (injected by Snakemake)
runs = [
    SweepRun(metrics=Path(metrics), history=Path(history), **facts)
    for facts, metrics, history in zip(sm.params.runs, sm.input.metrics, sm.input.histories)
]
run_script(
    sm, lambda: learnability_report(runs, sm.params.labels, Path(sm.output.csv), Path(sm.output.png), sm.params.title)
)
