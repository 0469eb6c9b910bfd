# Test accuracy and per-image inference cost (FLOPs, peak memory, time) of one trained run.


rule evaluate:
    input:
        views="results/{dataset}/views.h5",
        model="results/{dataset}/{method}/{run}/model.pt",
    output:
        metrics="results/{dataset}/{method}/{run}/metrics.json",
    params:
        dataset_config=dataset_config,
        model_type=lambda wc: config["methods"][wc.method]["model"],
        model_params=lambda wc: zconfig.model_params(config, wc.dataset, wc.method),
        training=lambda wc: zconfig.training(config, wc.dataset, wc.method),
        seed=lambda wc: zconfig.run_seed(config, wc.run),
        device=config.get("device", "auto"),
        measure=config.get("measure", {"repeats": 5, "warmup": 2}),
    log:
        "logs/{dataset}/{method}/{run}/evaluate.log",
    benchmark:
        "benchmarks/{dataset}/{method}/{run}/evaluate.tsv"
    threads: train_resources("threads", 2)
    resources:
        gpu=train_resources("gpu", 0),
        mem_mb=train_resources("mem_mb", 4000),
    conda:
        "../../envs/zoomin.yaml"
    script:
        "../scripts/evaluate.py"
