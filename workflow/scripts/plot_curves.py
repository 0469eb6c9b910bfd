"""Snakemake adapter: training curves of every run of one (dataset, method)."""
from pathlib import Path

from zoomin.cli.workflow_support import run_script
from zoomin.report.draw import plot_curves

sm = snakemake  # noqa: F821 (injected by Snakemake)
w = sm.wildcards
histories = {Path(history).parent.name: history for history in sm.input.histories}  # results/<d>/<m>/<run>/
run_script(sm, lambda: plot_curves(histories, sm.output.png, f"{w.dataset} / {w.method}"))
