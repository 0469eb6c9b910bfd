# Low-resolution views of every image, cached in one HDF5 file per dataset (docs/formats.md section 2).


rule build_views:
    input:
        constructed="resources/{dataset}/constructed",
    output:
        views="results/{dataset}/views.h5",
    params:
        scales=lambda wc: zconfig.view_scales(config, wc.dataset),
    log:
        "logs/{dataset}/build_views.log",
    benchmark:
        "benchmarks/{dataset}/build_views.tsv"
    conda:
        "../../envs/zoomin.yaml"
    script:
        "../scripts/build_views.py"
