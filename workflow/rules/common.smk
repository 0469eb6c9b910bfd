# Config validation (before any job runs), wildcard constraints and input functions.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from snakemake.utils import validate

import zoomin.config as zconfig

validate(config, "../schemas/config.schema.yaml")
zconfig.check(config)

DATASETS = list(config["datasets"])
METHODS = list(config["methods"])
PLOT_CODE = ["src/zoomin/plots.py"]
TABLE_CODE = ["src/zoomin/tables.py"]


wildcard_constraints:
    dataset="|".join(DATASETS),
    method="|".join(METHODS),
    run=r"(r\d+f\d+|s\d+)",


def dataset_config(wildcards):
    return config["datasets"][wildcards.dataset]


def runs(dataset):
    return zconfig.run_ids(config["datasets"][dataset])


def metrics_files(table):
    return [
        f"results/{dataset}/{method}/{run}/metrics.json"
        for dataset, ds in config["datasets"].items()
        if ds.get("table", "table1") == table
        for method in ds["methods"]
        for run in runs(dataset)
    ]


def table_outputs():
    tables = sorted({ds.get("table", "table1") for ds in config["datasets"].values()})
    return [f"results/{table}.{ext}" for table in tables for ext in ("csv", "md")]


def attention_figures():
    method = config.get("figures", {}).get("attention_method")
    return [
        f"results/figures/attention_{dataset}.png"
        for dataset, ds in config["datasets"].items()
        if method in ds["methods"]
    ]


def curve_figures():
    return [
        f"results/{dataset}/{method}/{run}/curves.png"
        for dataset, ds in config["datasets"].items()
        for method in ds["methods"]
        for run in runs(dataset)
    ]


def train_resources(key, default):
    return config.get("resources", {}).get("train", {}).get(key, default)


def construct_inputs(wildcards):
    """The download marker for real sources; nothing for generated or user-provided data."""
    source = config["datasets"][wildcards.dataset]["source"]
    if source in ("synthetic", "image_folder", "slide_folder"):
        return []
    return [f"resources/{wildcards.dataset}/raw/.complete"]
