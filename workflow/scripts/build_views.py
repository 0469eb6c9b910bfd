"""Snakemake adapter: cache the low-resolution views of an image dataset in HDF5."""
from zoomin.cli.workflow_support import run_script
from zoomin.data.view_cache import build_view_cache

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_script(sm, lambda: build_view_cache(sm.input.constructed, list(sm.params.scales), sm.output.views))
