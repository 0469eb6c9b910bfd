"""Snakemake adapter: index the per-slide caches of a slide dataset in one views.h5."""
from zoomin.cli.workflow_support import run_script
from zoomin.data.view_cache import build_slide_view_index

sm = snakemake  # noqa: F821 (injected by Snakemake)
run_script(
    sm,
    lambda: build_slide_view_index(sm.input.constructed, sm.params.slides_dir, list(sm.params.scales), sm.output.views),
)
