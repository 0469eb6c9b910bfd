"""Snakemake adapter: training curves of every run of one (dataset, method)."""
from zoomin.plots import plot_curves
from zoomin.workflow_support import run_script

sm = snakemake  # noqa: F821 (injected by Snakemake)
w = sm.wildcards
histories = dict(zip(sm.params.runs, sm.input.histories))
run_script(sm, lambda: plot_curves(histories, sm.output.png, f"{w.dataset} / {w.method}"))
