# The paper's other figures (Figures 4, 5, 7, 8) and the Pareto sweep, as the config's `figures:`
# block asks. Like the tables, they list the package modules that draw them as inputs, so editing
# that code re-runs only these rules, never training. Memory against image side is a measurement
# of its own (memory_scaling), which drawing Figure 4 reads.


localrules:
    plot_errorbars,
    plot_pareto,
    plot_budget,


rule memory_scaling:
    input:
        code=code_of("zoomin.measure.scaling"),
    output:
        csv="results/figures/memory_scaling.csv",
    log:
        "logs/figures/memory_scaling.log",
    benchmark:
        "logs/figures/memory_scaling.benchmark.tsv"
    conda:
        "../../envs/zoomin.yaml"
    threads: EXP.resources.threads
    params:
        sides=lambda wc: list(EXP.figures.memory.sides),
        cnn_max_side=lambda wc: EXP.figures.memory.cnn_max_side,
        device=EXP.settings.device,
        seed=EXP.seed,
        repeats=EXP.measure.repeats,
        warmup=EXP.measure.warmup,
    script:
        "../scripts/memory_scaling.py"


rule plot_memory:
    input:
        histories=lambda wc: [
            f"{RUN}/history.csv".format(dataset=d, method=m, run=r)
            for d, m, r in dataset_runs(EXP.figures.memory.dataset, EXP.figures.memory.methods)
        ],
        views=lambda wc: VIEWS.format(dataset=EXP.figures.memory.dataset),
        scaling="results/figures/memory_scaling.csv",
        code=code_of("zoomin.report.figures", "zoomin.report.figure_data", "zoomin.report.draw"),
    output:
        png=report("results/figures/memory.png", caption="../report/memory.rst", category="Figures"),
    log:
        "logs/figures/plot_memory.log",
    conda:
        "../../envs/zoomin.yaml"
    params:
        runs=lambda wc: dataset_runs(EXP.figures.memory.dataset, EXP.figures.memory.methods),
        methods=method_facts(),
        tile=lambda wc: EXP.tile_size(EXP.figures.memory.dataset, EXP.figures.memory.methods),
        title=lambda wc: EXP.datasets[EXP.figures.memory.dataset].block,
    script:
        "../scripts/plot_memory.py"


rule plot_errorbars:
    input:
        metrics=lambda wc: metrics_of(dataset_runs(wc.dataset, EXP.datasets[wc.dataset].methods)),
        paper=lambda wc: [p for p in ["config/paper_figure5.csv"] if os.path.exists(p)],
        code=code_of("zoomin.report.figures", "zoomin.report.figure_data", "zoomin.report.draw"),
    output:
        png=report("results/figures/errorbars_{dataset}.png", caption="../report/errorbars.rst", category="Figures"),
    log:
        "logs/figures/errorbars_{dataset}.log",
    conda:
        "../../envs/zoomin.yaml"
    params:
        runs=lambda wc: dataset_runs(wc.dataset, EXP.datasets[wc.dataset].methods),
        methods=method_facts(),
        block=lambda wc: EXP.datasets[wc.dataset].block,
    script:
        "../scripts/plot_errorbars.py"


rule plot_spearman:
    input:
        views=VIEWS,
        models=lambda wc: [
            f"{RUN}/model.pt".format(dataset=d, method=m, run=r) for d, m, r in attention_runs(wc.dataset)
        ],
        code=code_of("zoomin.report.figures", "zoomin.report.agreement", "zoomin.report.draw"),
    output:
        png=report("results/figures/spearman_{dataset}.png", caption="../report/spearman.rst", category="Figures"),
        csv=report("results/figures/spearman_{dataset}.csv", caption="../report/spearman.rst", category="Figures"),
        tiles="results/figures/spearman_{dataset}_tiles.csv",
    log:
        "logs/figures/spearman_{dataset}.log",
    conda:
        "../../envs/zoomin.yaml"
    params:
        specs=lambda wc: [EXP.run(d, m, r).to_dict() for d, m, r in attention_runs(wc.dataset)],
    script:
        "../scripts/plot_spearman.py"


rule plot_views:
    input:
        views=VIEWS,
        model=lambda wc: f"{RUN}/model.pt".format(**attention_run(wc)),
        code=code_of("zoomin.report.figures", "zoomin.report.draw"),
    output:
        png=report("results/figures/views_{dataset}.png", caption="../report/views.rst", category="Figures"),
    log:
        "logs/figures/views_{dataset}.log",
    conda:
        "../../envs/zoomin.yaml"
    params:
        spec=lambda wc: EXP.run(**attention_run(wc)).to_dict(),
    script:
        "../scripts/plot_views.py"


rule plot_pareto:
    input:
        metrics=lambda wc: metrics_of(dataset_runs(EXP.figures.pareto.dataset, EXP.figures.pareto.methods)),
        code=code_of("zoomin.report.figures", "zoomin.report.figure_data", "zoomin.report.draw"),
    output:
        png=report("results/figures/pareto.png", caption="../report/pareto.rst", category="Figures"),
        csv=report("results/figures/pareto.csv", caption="../report/pareto.rst", category="Figures"),
    log:
        "logs/figures/pareto.log",
    conda:
        "../../envs/zoomin.yaml"
    params:
        runs=lambda wc: dataset_runs(EXP.figures.pareto.dataset, EXP.figures.pareto.methods),
        methods=method_facts(),
        settings=lambda wc: {
            m: EXP.model(EXP.figures.pareto.dataset, m).params.to_dict() for m in EXP.figures.pareto.methods
        },
        block=lambda wc: EXP.datasets[EXP.figures.pareto.dataset].block,
    script:
        "../scripts/plot_pareto.py"


# Validation accuracy against cumulative training compute (history.csv) for every method of a
# dataset's table block: whether a row was starved or had converged.
rule plot_budget:
    input:
        histories=lambda wc: histories_of(dataset_runs(wc.dataset, EXP.datasets[wc.dataset].methods)),
        code=code_of("zoomin.report.figures", "zoomin.report.figure_data", "zoomin.report.draw"),
    output:
        png=report("results/figures/budget_{dataset}.png", caption="../report/budget.rst", category="Figures"),
    log:
        "logs/figures/budget_{dataset}.log",
    wildcard_constraints:
        dataset=one_of([d for d, ds in EXP.datasets.items() if ds.table is not None]),
    conda:
        "../../envs/zoomin.yaml"
    params:
        runs=lambda wc: dataset_runs(wc.dataset, EXP.datasets[wc.dataset].methods),
        methods=method_facts(),
        block=lambda wc: EXP.datasets[wc.dataset].block,
    script:
        "../scripts/plot_budget.py"
