# Tables and figures. They depend on the plotting/table code itself, so editing that code
# re-runs only these rules, never training.


localrules:
    table,
    plot_curves,
    plot_attention,


rule table:
    input:
        metrics=lambda wc: metrics_files(wc.table),
        paper=lambda wc: f"config/paper_{wc.table}.csv",
        code=TABLE_CODE,
    output:
        csv=report("results/{table}.csv", caption="../report/table.rst", category="Tables"),
        md="results/{table}.md",
    params:
        datasets=config["datasets"],
        methods=config["methods"],
    wildcard_constraints:
        table="table1|table2",
    log:
        "logs/{table}.log",
    conda:
        "../../envs/zoomin.yaml"
    script:
        "../scripts/make_table.py"


rule plot_curves:
    input:
        history="results/{dataset}/{method}/{run}/history.csv",
        code=PLOT_CODE,
    output:
        png=report(
            "results/{dataset}/{method}/{run}/curves.png",
            caption="../report/curves.rst",
            category="Training curves",
            subcategory="{dataset}",
        ),
    log:
        "logs/{dataset}/{method}/{run}/plot_curves.log",
    conda:
        "../../envs/zoomin.yaml"
    script:
        "../scripts/plot_curves.py"


rule plot_attention:
    input:
        views="results/{dataset}/views.h5",
        model=lambda wc: f"results/{wc.dataset}/{config['figures']['attention_method']}/{runs(wc.dataset)[0]}/model.pt",
        code=PLOT_CODE,
    output:
        png=report(
            "results/figures/attention_{dataset}.png",
            caption="../report/attention.rst",
            category="Attention",
        ),
    params:
        dataset_config=dataset_config,
        model_type=lambda wc: config["methods"][config["figures"]["attention_method"]]["model"],
        model_params=lambda wc: zconfig.model_params(config, wc.dataset, config["figures"]["attention_method"]),
        seed=lambda wc: zconfig.run_seed(config, runs(wc.dataset)[0]),
        run=lambda wc: runs(wc.dataset)[0],
    log:
        "logs/{dataset}/plot_attention.log",
    conda:
        "../../envs/zoomin.yaml"
    script:
        "../scripts/plot_attention.py"
