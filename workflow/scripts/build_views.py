"""Snakemake adapter: cache the low-resolution views of a dataset in HDF5 (slides: index their caches)."""
from zoomin.data.view_cache import build_slide_view_index, build_view_cache
from zoomin.workflow_support import run_script

sm = snakemake  # noqa: F821 (injected by Snakemake)
if sm.params.slides_dir:
    run_script(
        sm,
        lambda: build_slide_view_index(sm.input.constructed, sm.params.slides_dir, list(sm.params.scales), sm.output.views),
    )
else:
    run_script(sm, lambda: build_view_cache(sm.input.constructed, list(sm.params.scales), sm.output.views))
