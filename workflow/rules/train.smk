# Train one (dataset, method, run). Checkpoints go to checkpoints/, outside the rule's outputs, so
# that a pre-empted or killed job resumes from its last epoch instead of starting over.


rule train:
    input:
        views="results/{dataset}/views.h5",
    output:
        model="results/{dataset}/{method}/{run}/model.pt",
        history="results/{dataset}/{method}/{run}/history.csv",
    params:
        dataset_config=dataset_config,
        model_type=lambda wc: config["methods"][wc.method]["model"],
        model_params=lambda wc: zconfig.model_params(config, wc.dataset, wc.method),
        training=lambda wc: zconfig.training(config, wc.dataset, wc.method),
        seed=lambda wc: zconfig.run_seed(config, wc.run),
        device=config.get("device", "auto"),
        mixed_precision=config.get("mixed_precision", False),
        checkpoint_dir="checkpoints/{dataset}/{method}/{run}",
    log:
        "logs/{dataset}/{method}/{run}/train.log",
    benchmark:
        "benchmarks/{dataset}/{method}/{run}/train.tsv"
    threads: train_resources("threads", 2)
    retries: 2
    resources:
        gpu=train_resources("gpu", 0),
        mem_mb=train_resources("mem_mb", 4000),
        runtime=lambda wc, attempt: train_resources("runtime", 60) * attempt,
    conda:
        "../../envs/zoomin.yaml"
    script:
        "../scripts/train.py"
