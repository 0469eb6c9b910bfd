# Construct each dataset in the common on-disk format (docs/formats.md section 1).
#
# A checkpoint: the slides of a kind: slide dataset (and so its per-slide cache jobs, views.smk)
# are known only once it is constructed. Image datasets never ask for the checkpoint's result, so
# their DAG is planned in full before anything runs.


checkpoint construct_dataset:
    input:
        raw=construct_inputs,
    output:
        constructed=directory("resources/{dataset}/constructed"),
    params:
        source=lambda wc: config["datasets"][wc.dataset]["source"],
        construct=lambda wc: config["datasets"][wc.dataset].get("construct", {}),
        raw_dir=lambda wc: f"resources/{wc.dataset}/raw",
    log:
        "logs/{dataset}/construct.log",
    conda:
        "../../envs/zoomin.yaml"
    script:
        "../scripts/construct_dataset.py"
