# Low-resolution views of every image, cached in HDF5 (docs/formats.md sections 2-3).
#
# Image datasets: one views.h5 holds every view. Slide datasets: one cache per slide, each its own
# job (slides take minutes each; per-slide jobs run in parallel, on a cluster too, and a failed or
# killed slide is redone alone), then views.h5 indexes them with HDF5 external links.


rule build_views:
    input:
        constructed=CONSTRUCTED,
    output:
        views=VIEWS,
    log:
        "logs/{dataset}/build_views.log",
    benchmark:
        "logs/{dataset}/build_views.benchmark.tsv"
    wildcard_constraints:
        dataset=one_of(IMAGE_DATASETS),
    conda:
        "../../envs/zoomin.yaml"
    params:
        scales=lambda wc: EXP.cache_scales(wc.dataset, slides=False),
    script:
        "../scripts/build_views.py"


rule slide_cache:
    input:
        constructed=CONSTRUCTED,
    output:
        cache="results/{dataset}/slides/{image_id}.h5",
    log:
        "logs/{dataset}/slides/{image_id}.log",
    benchmark:
        "logs/{dataset}/slides/{image_id}.benchmark.tsv"
    wildcard_constraints:
        dataset=one_of(SLIDE_DATASETS),
        image_id=r"[A-Za-z0-9_.-]+",
    priority: slides_first
    conda:
        "../../envs/zoomin.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        scales=lambda wc: EXP.cache_scales(wc.dataset, slides=True),
        tile_size=lambda wc: EXP.slide_tile_size(wc.dataset),
    script:
        "../scripts/slide_cache.py"


rule index_slide_views:
    input:
        constructed=CONSTRUCTED,
        slides=slide_caches,
    output:
        views=VIEWS,
    log:
        "logs/{dataset}/build_views.log",
    wildcard_constraints:
        dataset=one_of(SLIDE_DATASETS),
    priority: slides_first
    conda:
        "../../envs/zoomin.yaml"
    params:
        scales=lambda wc: EXP.cache_scales(wc.dataset, slides=True),
        slides_dir="results/{dataset}/slides",
    script:
        "../scripts/index_slide_views.py"
