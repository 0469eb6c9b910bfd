# Low-resolution views of every image, cached in HDF5 (docs/formats.md sections 2-3).
#
# Image datasets: one views.h5 holds every view. Slide datasets: one cache per slide, each its own
# job (slides take minutes each; per-slide jobs run in parallel, on a cluster too, and a failed or
# killed slide is redone alone), then views.h5 indexes them with HDF5 external links.


rule slide_cache:
    input:
        constructed="resources/{dataset}/constructed",
    output:
        cache="results/{dataset}/slides/{image_id}.h5",
    params:
        scales=lambda wc: cache_scales(wc.dataset),
        tile_size=lambda wc: slide_tile_size(wc.dataset),
    wildcard_constraints:
        dataset="|".join(SLIDE_DATASETS) or "(?!x)x",
        image_id=r"[A-Za-z0-9_.-]+",
    log:
        "logs/{dataset}/slides/{image_id}.log",
    benchmark:
        "benchmarks/{dataset}/slides/{image_id}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        "../../envs/zoomin.yaml"
    script:
        "../scripts/slide_cache.py"


rule build_views:
    input:
        constructed="resources/{dataset}/constructed",
        slides=slide_caches,
    output:
        views="results/{dataset}/views.h5",
    params:
        scales=lambda wc: cache_scales(wc.dataset),
        slides_dir=lambda wc: f"results/{wc.dataset}/slides" if is_slide_dataset(wc.dataset) else "",
    log:
        "logs/{dataset}/build_views.log",
    benchmark:
        "benchmarks/{dataset}/build_views.tsv"
    conda:
        "../../envs/zoomin.yaml"
    script:
        "../scripts/build_views.py"
