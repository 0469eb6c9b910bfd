"""Snakemake adapter: training curves of one run."""
from zoomin.plots import plot_curves
from zoomin.workflow_support import run_script

sm = snakemake  # noqa: F821 (injected by Snakemake)
w = sm.wildcards
run_script(sm, lambda: plot_curves(sm.input.history, sm.output.png, f"{w.dataset} / {w.method} / {w.run}"))
