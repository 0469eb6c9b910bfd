# The learnability sweep (docs/learnability.md): every method of the config's `learnability:` block
# on every cell of its grid -- one generated dataset of the parametric stand-in per (object-to-image
# ratio, training-set size), constructed, viewed and trained by the ordinary rules (datasets.smk,
# views.smk, train.smk), so each run is results/<cell>/<method>/s<k>/ -- gathered into
# results/learnability.csv and the map results/figures/learnability.png.
#
# Its own target, `snakemake --cores 2 learnability`, not part of `all`: the embedded default's grid
# alone takes about as long as `all` (docs/learnability.md gives the times).


if EXP.learnability is not None:

    localrules:
        learnability,

    rule learnability:
        input:
            metrics=metrics_of(sweep_runs()),
            histories=[f"{RUN}/history.csv".format(dataset=d, method=m, run=r) for d, m, r in sweep_runs()],
            code=code_of("zoomin.report.learnability", "zoomin.report.draw_learnability"),
        output:
            csv=report("results/learnability.csv", caption="../report/learnability.rst", category="Learnability"),
            png=report(
                "results/figures/learnability.png",
                caption="../report/learnability.rst",
                category="Learnability",
            ),
        log:
            "logs/learnability.log",
        conda:
            "../../envs/zoomin.yaml"
        params:
            runs=sweep_run_facts(),
            labels={name: method["label"] for name, method in EXP.learnability.methods.items()},
            title=f"Learnability: {EXP.learnability.image_size()} px images of the parametric stand-in",
        script:
            "../scripts/learnability.py"
