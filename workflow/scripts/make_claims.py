"""Snakemake adapter: the paper's claims judged from the tables and Figure 7 (results/claims.md, .csv)."""
from pathlib import Path

from zoomin.cli.workflow_support import run_script
from zoomin.report.claims import write_claims

sm = snakemake  # noqa: F821 (injected by Snakemake)
tables = dict(zip(sm.params.tables, sm.input.tables))
spearman = {d: (summary, tiles) for d, summary, tiles in zip(sm.params.spearman, sm.input.spearman, sm.input.tiles)}
run_script(
    sm,
    lambda: write_claims(
        tables, spearman, sm.params.models, sm.params.reference, sm.params.blocks,
        Path(sm.output.md), Path(sm.output.csv),
    ),
)
