# Train one (dataset, method, run), then evaluate it on its test images in the same job: one
# process, so one start-up of torch (~4 s on a 2-core machine) per run rather than two.
# Checkpoints go to checkpoints/, outside the rule's outputs, so that a pre-empted or killed job
# resumes from its last epoch instead of starting over.


rule train:
    input:
        views=VIEWS,
    output:
        model=f"{RUN}/model.pt",
        history=f"{RUN}/history.csv",
        metrics=f"{RUN}/metrics.json",
    log:
        "logs/{dataset}/{method}/{run}/train.log",
    benchmark:
        "logs/{dataset}/{method}/{run}/train.benchmark.tsv"
    priority: slides_first
    retries: 2
    conda:
        "../../envs/zoomin.yaml"
    threads: EXP.resources.threads
    resources:
        gpu=EXP.resources.gpu,
        mem_mb=EXP.resources.mem_mb,
        runtime=lambda wc, attempt: EXP.resources.runtime * attempt,
    params:
        spec=run_spec,
        checkpoint_dir="checkpoints/{dataset}/{method}/{run}",
    script:
        "../scripts/train.py"
