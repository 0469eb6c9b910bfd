# Download the raw files of a real dataset into resources/<dataset>/raw/.
#
# The marker resources/<dataset>/raw/.complete is written last, so a crashed download reruns, and
# the raw folder itself is never an output (Snakemake would delete it, and with it the .part files
# that let a rerun resume). Options come from config["datasets"][<name>]["download"]; for fmow,
# `classes`, `n_train` and `seed` are taken from its `construct:` block too, so the download and
# the construction pick the same images.


localrules:
    download_dataset,


rule download_dataset:
    output:
        marker="resources/{dataset}/raw/.complete",
    wildcard_constraints:
        dataset="|".join(
            name
            for name, ds in config["datasets"].items()
            if ds["source"] in ("colon_cancer", "traffic_signs", "fmow", "camelyon16", "needle_camelyon")
        )
        or "(?!x)x",
    params:
        source=lambda wc: config["datasets"][wc.dataset]["source"],
        options=lambda wc: {
            **{
                key: value
                for key, value in config["datasets"][wc.dataset].get("construct", {}).items()
                if config["datasets"][wc.dataset]["source"] == "fmow" and key in ("classes", "n_train", "seed")
            },
            **config["datasets"][wc.dataset].get("download", {}),
        },
        raw_dir=lambda wc: f"resources/{wc.dataset}/raw",
    log:
        "logs/{dataset}/download.log",
    conda:
        "../../envs/zoomin.yaml"
    script:
        "../scripts/download_dataset.py"
