# The config, checked before any job runs; path patterns, wildcard constraints and input functions.
#
# Everything a rule needs to know about a dataset, a method or a run comes from the typed
# Experiment that zoomin.config.load.prepare builds from the config (src/zoomin/config/); facts about a
# model type come from the model registry, facts about a data source from the source registry.
import os
import sys
from importlib.util import find_spec
from pathlib import Path

import zoomin.config.load
from zoomin.data.sources import download_options, get_source
from zoomin.errors import ConfigError

try:
    EXP = zoomin.config.load.prepare(config)
except ConfigError as error:
    sys.exit(f"zoomin: error: {error}")

DATASETS = list(EXP.datasets)
METHODS = list(EXP.methods)
SLIDE_DATASETS = [d for d, ds in EXP.datasets.items() if get_source(ds.source).kind == "slide"]
IMAGE_DATASETS = [d for d in DATASETS if d not in SLIDE_DATASETS]
DOWNLOADABLE = [d for d, ds in EXP.datasets.items() if get_source(ds.source).download is not None]
# The learnability sweep's generated datasets (learnability.smk): its runs are its own target, so
# `all` draws no training curves or attention figures of them (a hundred figures nobody reads).
SWEEP_DATASETS = {cell.dataset for cell in EXP.learnability.cells()} if EXP.learnability else set()
NO_MATCH = "(?!x)x"  # a wildcard constraint no value satisfies: the rule applies to no dataset

RAW = "resources/{dataset}/raw"
CONSTRUCTED = "resources/{dataset}/constructed"
VIEWS = "results/{dataset}/views.h5"
RUN = "results/{dataset}/{method}/{run}"
CURVES = "results/{dataset}/{method}/curves.png"  # training curves of every run of a method
PREDICTIONS = "results/predictions/{dataset}/{method}/{run}"


def code_of(*modules):
    """The source files of package modules, as inputs of the rules they drive: editing a plot
    or table module re-runs only its rules (resolved where the package is installed)."""
    return [find_spec(module).origin for module in modules]


wildcard_constraints:
    dataset="|".join(DATASETS),
    method="|".join(METHODS),
    run=r"(r\d+f\d+|s\d+)",


def slides_first(wildcards):
    """Scheduling priority: a slide dataset's chain (drawing the slides, their caches, training on
    them) holds the longest jobs, so it starts first and the shorter jobs fill the cores around it
    instead of leaving the slide trainings to run alone at the end."""
    return 1 if wildcards.dataset in SLIDE_DATASETS else 0


def one_of(names):
    return "|".join(names) or NO_MATCH


def run_spec(wildcards):
    """The run's RunSpec as plain data: a changed setting re-runs exactly the jobs it affects."""
    return EXP.run(wildcards.dataset, wildcards.method, wildcards.run).to_dict()


def metrics_of(runs):
    """The metrics files of (dataset, method, run) triples."""
    return [f"{RUN}/metrics.json".format(dataset=d, method=m, run=r) for d, m, r in runs]


def final_outputs():
    """Every table, figure and prediction the config asks for, and the claims (the inputs of `all`)."""
    outputs = table_outputs() + attention_figures() + curve_figures() + prediction_outputs() + paper_figures()
    return outputs + budget_figures() + ["results/claims.md", "results/claims.csv"]


def histories_of(runs):
    """The history files of (dataset, method, run) triples (their training budget)."""
    return [f"{RUN}/history.csv".format(dataset=d, method=m, run=r) for d, m, r in runs]


def reference_label():
    """Label of the method every table row is compared with: the figures' attention method (Zoom-In)."""
    method = EXP.figures.attention_method
    return EXP.methods[method].label if method is not None else None


def table_outputs():
    return [f"results/{table}.{ext}" for table in EXP.tables() for ext in ("csv", "md")]


def table_with_figures(name):
    """A table and the figures of its runs: the table files, its methods' curves, the attention figure
    of each of its datasets the attention method trains on, its datasets' error-bar figures and
    their budget figures (validation accuracy against training compute)."""
    pairs = [tuple(pair) for pair in EXP.table(name).rows]
    datasets = list(dict.fromkeys(dataset for dataset, _ in pairs))
    out = [f"results/{name}.{ext}" for ext in ("csv", "md")]
    out += [CURVES.format(dataset=d, method=m) for d, m in dict.fromkeys(pairs)]
    out += [
        f"results/figures/attention_{d}.png"
        for d, m in EXP.trained()
        if m == EXP.figures.attention_method and d in datasets
    ]
    out += [f"results/figures/errorbars_{d}.png" for d in EXP.figures.errorbars if d in datasets]
    out += budget_figures(datasets)
    return out


def claim_tables():
    """The tables the claims read (zoomin.report.claims.TABLES_READ) that this config makes."""
    from zoomin.report.claims import TABLES_READ

    wanted = dict.fromkeys(name for names in TABLES_READ.values() for name in names)
    return [name for name in wanted if name in EXP.tables()]


def budget_figures(datasets=None):
    """Validation accuracy against training compute, one figure per dataset with a table block."""
    blocks = [d for d, ds in EXP.datasets.items() if ds.table is not None]
    return [f"results/figures/budget_{d}.png" for d in blocks if datasets is None or d in datasets]


def paper_numbers(wildcards):
    """The paper's numbers of a table, config/paper_<table>.csv, if the config directory has one."""
    path = f"config/paper_{wildcards.table}.csv"
    return [path] if os.path.exists(path) else []


def attention_figures():
    return [
        f"results/figures/attention_{dataset}.png"
        for dataset, method in EXP.trained()
        if method == EXP.figures.attention_method and dataset not in SWEEP_DATASETS
    ]


def curve_figures():
    return [CURVES.format(dataset=d, method=m) for d, m in EXP.trained() if d not in SWEEP_DATASETS]


def paper_figures():
    """Figures 4, 5, 7 and 8 and the Pareto sweep, as the config's `figures:` block asks."""
    figures = EXP.figures
    out = [f"results/figures/errorbars_{dataset}.png" for dataset in figures.errorbars]
    out += [f"results/figures/spearman_{dataset}.{ext}" for dataset in figures.spearman for ext in ("png", "csv")]
    out += [f"results/figures/views_{dataset}.png" for dataset in figures.views]
    if figures.pareto is not None:
        out += ["results/figures/pareto.png", "results/figures/pareto.csv"]
    if figures.memory is not None:
        out += ["results/figures/memory.png"]
    return out


def attention_run(wildcards):
    """The run whose model draws a dataset's attention figure: the attention method's first run."""
    dataset = wildcards.dataset
    return {"dataset": dataset, "method": EXP.figures.attention_method, "run": EXP.datasets[dataset].runs[0]}


def slide_caches(wildcards):
    """Every slide cache of a slide dataset; known only once the construct_dataset checkpoint ran."""
    from zoomin.data.constructed import read_constructed

    constructed = checkpoints.construct_dataset.get(dataset=wildcards.dataset).output.constructed
    return [f"results/{wildcards.dataset}/slides/{image_id}.h5" for image_id in read_constructed(constructed).image_ids]


def download_threads(wildcards):
    """Cores of a download job: its ``workers`` (parallel transfers, or slides drawn at once)."""
    ds = EXP.datasets[wildcards.dataset]
    return int(download_options(ds.source, ds.construct, ds.download).get("workers", 1))


def construct_inputs(wildcards):
    """The download marker for sources that download; nothing for generated or user-provided data."""
    return [f"{RAW}/.complete".format(dataset=wildcards.dataset)] if wildcards.dataset in DOWNLOADABLE else []


def prediction_outputs():
    """The prediction folders of every (dataset, method, run) the config's `predict` block names."""
    return [PREDICTIONS.format(dataset=t.dataset, method=t.method, run=t.run) for t in EXP.predictions]


def prediction_target(wildcards):
    """The PredictionTarget of one predict job."""
    for target in EXP.predictions:
        if (target.dataset, target.method, target.run) == (wildcards.dataset, wildcards.method, wildcards.run):
            return target
    raise ValueError(f"no prediction of {wildcards.dataset}/{wildcards.method}/{wildcards.run} is configured")


def prediction_inputs(wildcards):
    """The files a predict job reads: the listed paths, except that a path inside a dataset's
    constructed folder (made by the construct_dataset checkpoint) stands for that folder."""
    inputs = []
    for path in prediction_target(wildcards).inputs:
        parts = Path(path).parts
        owner = next((d for d in DATASETS if parts[:3] == Path(CONSTRUCTED.format(dataset=d)).parts), None)
        needed = CONSTRUCTED.format(dataset=owner) if owner is not None else path
        if needed not in inputs:
            inputs.append(needed)
    return inputs


# ---------------------------------------------------------------- figures (figures.smk)
def method_facts():
    """Label and model type of every method, for the figure adapters."""
    return {name: {"label": m.label, "model": m.model} for name, m in EXP.methods.items()}


def dataset_runs(dataset, methods):
    return EXP.runs_of([(dataset, method) for method in methods])


def attention_runs(dataset):
    return dataset_runs(dataset, [EXP.figures.attention_method])


# ---------------------------------------------------------------- the learnability sweep (learnability.smk)
def sweep_runs():
    """(dataset, method, run) of every run of the sweep, cells in grid order."""
    spec = EXP.learnability
    return [(cell.dataset, method, run) for cell in spec.cells() for method in spec.methods for run in spec.runs()]


def sweep_run_facts():
    """What the map needs to know of each run besides its files: its cell and its budget."""
    spec = EXP.learnability
    cells = {cell.dataset: cell for cell in spec.cells()}
    return [
        {
            "method": method,
            "ratio": cells[dataset].ratio,
            "train_images": cells[dataset].train_images,
            "run": run,
            "batch_size": EXP.training(dataset, method).batch_size,
            "image_size": spec.image_size(),
        }
        for dataset, method, run in sweep_runs()
    ]
