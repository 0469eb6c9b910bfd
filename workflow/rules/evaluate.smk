# Test accuracy and per-image inference cost (FLOPs, peak memory, time) of one trained run.


rule evaluate:
    input:
        views=VIEWS,
        model=f"{RUN}/model.pt",
    output:
        metrics=f"{RUN}/metrics.json",
    log:
        "logs/{dataset}/{method}/{run}/evaluate.log",
    benchmark:
        "logs/{dataset}/{method}/{run}/evaluate.benchmark.tsv"
    conda:
        "../../envs/zoomin.yaml"
    threads: EXP.resources.threads
    resources:
        gpu=EXP.resources.gpu,
        mem_mb=EXP.resources.mem_mb,
    params:
        spec=run_spec,
    script:
        "../scripts/evaluate.py"
