# Train one (dataset, method, run). Checkpoints go to checkpoints/, outside the rule's outputs, so
# that a pre-empted or killed job resumes from its last epoch instead of starting over.


rule train:
    input:
        views=VIEWS,
    output:
        model=f"{RUN}/model.pt",
        history=f"{RUN}/history.csv",
    params:
        spec=run_spec,
        checkpoint_dir="checkpoints/{dataset}/{method}/{run}",
    log:
        "logs/{dataset}/{method}/{run}/train.log",
    benchmark:
        "logs/{dataset}/{method}/{run}/train.benchmark.tsv"
    threads: EXP.resources.threads
    retries: 2
    resources:
        gpu=EXP.resources.gpu,
        mem_mb=EXP.resources.mem_mb,
        runtime=lambda wc, attempt: EXP.resources.runtime * attempt,
    conda:
        "../../envs/zoomin.yaml"
    script:
        "../scripts/train.py"
