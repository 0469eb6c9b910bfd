"""Snakemake adapter: aggregate the runs' metrics and histories into a table (CSV + Markdown)."""
from pathlib import Path

from zoomin.cli.workflow_support import run_script
from zoomin.report.tables import RunMetrics, TableRow, make_table

sm = snakemake  # noqa: F821 (injected by Snakemake)
runs = [
    RunMetrics(*identity, Path(path), Path(history))
    for identity, path, history in zip(sm.params.runs, sm.input.metrics, sm.input.histories)
]
rows = [TableRow.from_dict(row) for row in sm.params.rows]
paper = sm.input.paper[0] if sm.input.paper else None
run_script(
    sm,
    lambda: make_table(
        runs, rows, paper, Path(sm.output.csv), Path(sm.output.md), sm.params.title,
        reference=sm.params.reference, reference_label=sm.params.reference_label,
    ),
)
