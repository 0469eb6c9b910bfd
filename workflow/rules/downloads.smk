# Download the raw files of a dataset into resources/<dataset>/raw/ (for synthetic_camelyon16 the
# "download" draws the slides).
#
# The marker resources/<dataset>/raw/.complete is written last, so a crashed download reruns, and
# the raw folder itself is never an output (Snakemake would delete it, and with it the .part files
# that let a rerun resume). Options come from the dataset's `download:` block, plus the
# `construct:` options the source's record says its download needs too.


localrules:
    download_dataset,


rule download_dataset:
    output:
        marker=f"{RAW}/.complete",
    log:
        "logs/{dataset}/download.log",
    benchmark:
        "logs/{dataset}/download.benchmark.tsv"
    wildcard_constraints:
        dataset=one_of(DOWNLOADABLE),
    priority: slides_first
    conda:
        "../../envs/zoomin.yaml"
    threads: download_threads
    params:
        source=lambda wc: EXP.datasets[wc.dataset].source,
        options=lambda wc: download_options(
            EXP.datasets[wc.dataset].source,
            EXP.datasets[wc.dataset].construct,
            EXP.datasets[wc.dataset].download,
        ),
        raw_dir=RAW,
    script:
        "../scripts/download_dataset.py"
