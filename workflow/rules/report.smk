# Tables and figures. They list the package modules that make them as inputs, so editing that
# code re-runs only these rules, never training.


localrules:
    table,
    claims,
    plot_curves,
    plot_attention,


rule table:
    input:
        metrics=lambda wc: metrics_of(EXP.table_runs(wc.table)),
        histories=lambda wc: histories_of(EXP.table_runs(wc.table)),
        paper=paper_numbers,
        code=code_of(
            "zoomin.report.tables",
            "zoomin.report.evidence",
            "zoomin.report.stats",
            "zoomin.report.markdown",
        ),
    output:
        csv=report("results/{table}.csv", caption="../report/table.rst", category="Tables"),
        md="results/{table}.md",
    log:
        "logs/{table}.log",
    wildcard_constraints:
        table="|".join(EXP.tables()) or NO_MATCH,
    conda:
        "../../envs/zoomin.yaml"
    params:
        runs=lambda wc: EXP.table_runs(wc.table),
        rows=lambda wc: EXP.table_rows(wc.table),
        title=lambda wc: EXP.table(wc.table).title,
        reference=EXP.figures.attention_method,
        reference_label=reference_label(),
    script:
        "../scripts/make_table.py"


# The paper's claims judged from the tables and Figure 7's CSVs; a claim whose inputs the config
# does not make says "not run".
rule claims:
    input:
        tables=lambda wc: [f"results/{name}.csv" for name in claim_tables()],
        spearman=[f"results/figures/spearman_{d}.csv" for d in EXP.figures.spearman],
        tiles=[f"results/figures/spearman_{d}_tiles.csv" for d in EXP.figures.spearman],
        code=code_of("zoomin.report.claims", "zoomin.report.stats"),
    output:
        md=report("results/claims.md", caption="../report/claims.rst", category="Claims"),
        csv=report("results/claims.csv", caption="../report/claims.rst", category="Claims"),
    log:
        "logs/claims.log",
    conda:
        "../../envs/zoomin.yaml"
    params:
        tables=claim_tables(),
        spearman=list(EXP.figures.spearman),
        models={name: method.model for name, method in EXP.methods.items()},
        reference=EXP.figures.attention_method,
        blocks={name: dataset.block for name, dataset in EXP.datasets.items()},
    script:
        "../scripts/make_claims.py"


# One figure per (dataset, method) with a row per run: one job rather than one per run.
rule plot_curves:
    input:
        histories=lambda wc: [
            f"{RUN}/history.csv".format(dataset=d, method=m, run=r)
            for d, m, r in dataset_runs(wc.dataset, [wc.method])
        ],
        code=code_of("zoomin.report.draw"),
    output:
        png=report(
            CURVES,
            caption="../report/curves.rst",
            category="Training curves",
            subcategory="{dataset}",
        ),
    log:
        "logs/{dataset}/{method}/plot_curves.log",
    conda:
        "../../envs/zoomin.yaml"
    script:
        "../scripts/plot_curves.py"


rule plot_attention:
    input:
        views=VIEWS,
        model=lambda wc: f"{RUN}/model.pt".format(**attention_run(wc)),
        code=code_of("zoomin.report.draw", "zoomin.report.figures"),
    output:
        png=report(
            "results/figures/attention_{dataset}.png",
            caption="../report/attention.rst",
            category="Attention",
        ),
    log:
        "logs/{dataset}/plot_attention.log",
    conda:
        "../../envs/zoomin.yaml"
    params:
        spec=lambda wc: EXP.run(**attention_run(wc)).to_dict(),
    script:
        "../scripts/plot_attention.py"
