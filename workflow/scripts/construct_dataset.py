"""Snakemake adapter: construct a dataset (synthetic or real) in the common on-disk format."""
from zoomin.cli.workflow_support import run_script
from zoomin.data.sources import construct_dataset

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_script(
    sm,
    lambda: construct_dataset(
        source=sm.params.source,
        raw_dir=sm.params.raw_dir,
        out_dir=sm.output.constructed,
        name=sm.wildcards.dataset,
        params=dict(sm.params.construct),
    ),
)
