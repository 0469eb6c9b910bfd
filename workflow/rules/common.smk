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


# Sources whose constructed datasets are whole-slide images (kind: slide): their views live in one
# HDF5 cache per slide (results/<dataset>/slides/<image_id>.h5), listed after construction.
SLIDE_SOURCES = ("camelyon16", "slide_folder")
SLIDE_DATASETS = [name for name, ds in config["datasets"].items() if ds["source"] in SLIDE_SOURCES]


def is_slide_dataset(dataset):
    return config["datasets"][dataset]["source"] in SLIDE_SOURCES


def cache_scales(dataset):
    """Scales cached for a dataset. Images: every view scale the methods read. Slides: only the
    whole-slide views (Zoom-In's s1, ATS/CNN's scale); stage-2 views are read through OpenSlide."""
    scales = zconfig.view_scales(config, dataset)
    if not is_slide_dataset(dataset):
        return scales
    whole = set()
    for method in config["datasets"][dataset]["methods"]:
        params = zconfig.model_params(config, dataset, method)
        key = "s1" if config["methods"][method]["model"] == "zoomin" else "scale"
        if key in params and float(params[key]) < 1:
            whole.add(float(params[key]))
    return sorted(whole) or scales


def slide_tile_size(dataset):
    """Tile side (level-0 px) of the slide caches' tissue-tile coords: the dataset's Zoom-In tile."""
    for method in config["datasets"][dataset]["methods"]:
        if config["methods"][method]["model"] == "zoomin":
            return int(zconfig.model_params(config, dataset, method)["tile"])
    return 256


def slide_caches(wildcards):
    """Every slide cache of a slide dataset; known only once the construct_dataset checkpoint ran."""
    if not is_slide_dataset(wildcards.dataset):
        return []
    from zoomin.data.constructed import read_constructed

    constructed = checkpoints.construct_dataset.get(dataset=wildcards.dataset).output.constructed
    return [
        f"results/{wildcards.dataset}/slides/{image_id}.h5"
        for image_id in read_constructed(constructed).image_ids
    ]


def construct_inputs(wildcards):
    """The download marker for real sources; nothing for generated or user-provided data."""
    source = config["datasets"][wildcards.dataset]["source"]
    if source in ("synthetic", "image_folder", "slide_folder"):
        return []
    return [f"resources/{wildcards.dataset}/raw/.complete"]
