"""Snakemake adapter: peak inference memory, FLOPs and time against image side (Figure 4, right)."""
from pathlib import Path

from zoomin.cli.workflow_support import run_script
from zoomin.measure.scaling import memory_vs_side
from zoomin.report.figure_data import write_csv
from zoomin.training.device import choose_device

sm = snakemake  # noqa: F821 (injected by Snakemake)


def measure() -> None:
    device = choose_device(sm.params.device)
    table, _ = memory_vs_side(  # what it skips, and why, is in the job's log
        tuple(sm.params.sides), device, seed=sm.params.seed, repeats=sm.params.repeats, warmup=sm.params.warmup,
        max_side={"cnn": sm.params.cnn_max_side},
    )
    write_csv(table, Path(sm.output.csv))


run_script(sm, measure)
