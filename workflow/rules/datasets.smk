# Construct each dataset in the common on-disk format (docs/formats.md section 1).
#
# A checkpoint: the slides of a kind: slide dataset (and so its per-slide cache jobs, views.smk)
# are known only once it is constructed. Image datasets never ask for the checkpoint's result, so
# their DAG is planned in full before anything runs.


checkpoint construct_dataset:
    input:
        raw=construct_inputs,
    output:
        constructed=directory(CONSTRUCTED),
    log:
        "logs/{dataset}/construct.log",
    benchmark:
        "logs/{dataset}/construct.benchmark.tsv"
    priority: slides_first
    conda:
        "../../envs/zoomin.yaml"
    params:
        source=lambda wc: EXP.datasets[wc.dataset].source,
        construct=lambda wc: EXP.datasets[wc.dataset].construct,
        raw_dir=RAW,
    script:
        "../scripts/construct_dataset.py"
