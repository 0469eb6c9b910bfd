"""Snakemake adapter: the HDF5 cache of one slide of a constructed kind: slide dataset."""
from zoomin.cli.workflow_support import run_script
from zoomin.data.slide_cache import build_constructed_slide_cache

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_script(
    sm,
    lambda: build_constructed_slide_cache(
        sm.input.constructed,
        sm.wildcards.image_id,
        sm.output.cache,
        list(sm.params.scales),
        int(sm.params.tile_size),
    ),
)
