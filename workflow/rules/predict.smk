# Predictions of trained runs on the images and slides that the config's `predict` block lists
# (docs/predict.md): per (dataset, method, run) a folder with predictions.csv and, for models with
# attention, a heatmap PNG and a GeoJSON (and ASAP XML) per image.


localrules:
    predictions,


rule predictions:
    input:
        prediction_outputs(),


rule predict:
    input:
        model=f"{RUN}/model.pt",
        inputs=prediction_inputs,
    output:
        folder=directory(PREDICTIONS),
    log:
        "logs/predictions/{dataset}/{method}/{run}.log",
    conda:
        "../../envs/zoomin.yaml"
    threads: EXP.resources.threads
    resources:
        gpu=EXP.resources.gpu,
        mem_mb=EXP.resources.mem_mb,
    params:
        inputs=lambda wc: list(prediction_target(wc).inputs),
        settings=EXP.predict.to_dict(),
        device=EXP.settings.device,
    script:
        "../scripts/predict.py"
