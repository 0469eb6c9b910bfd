"""The config's ``learnability:`` block: its grid becomes ordinary datasets whose runs every sweep
method trains with the same budget, the sweep stays out of `all`'s figures, and every bad value is
refused naming its ``learnability.`` key before any job runs."""

from __future__ import annotations

import copy
import re

import pytest
import yaml
from PIL import Image

import zoomin.config.load as zconfig
from tests.workflow.helpers import REPO, copy_workflow, snakemake
from zoomin.config.outputs import LEARNABILITY_BLOCK, cell_name
from zoomin.errors import ConfigError

DEFAULT = yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def _with(change, base=DEFAULT):
    config = copy.deepcopy(base)
    change(config["learnability"])
    return config


def test_cell_names_are_plain_words():
    assert cell_name(0.01, 64) == "learn_r0p01_n64"
    assert cell_name(0.003, 24) == "learn_r0p003_n24"
    assert cell_name(1e-05, 1024) == "learn_r0p00001_n1024"  # never 1e-05: no '-' in a dataset name
    assert cell_name(0.1, 8) == "learn_r0p1_n8"


def test_the_embedded_grid_is_one_dataset_per_cell_and_every_method_gets_the_same_budget():
    experiment = zconfig.load(REPO / "config" / "config.yaml")
    spec = experiment.learnability
    grid = DEFAULT["learnability"]
    assert len(grid["ratios"]) >= 4 and len(grid["train_images"]) >= 3 and len(grid["seeds"]) >= 2
    cells = spec.cells()
    assert len(cells) == len(grid["ratios"]) * len(grid["train_images"])
    types = {method["model"]: method for method in spec.methods.values()}
    assert {"cnn", "ats", "zoomin"} <= set(types)
    scales = sorted(m.get("params", {}).get("scale", 1.0) for m in spec.methods.values() if m["model"] == "cnn")
    assert scales[0] < 1  # a low-resolution CNN
    budgets = set()
    for cell in cells:
        ds = experiment.datasets[cell.dataset]
        assert ds.block == LEARNABILITY_BLOCK and ds.table is None and ds.source == "synthetic"
        assert ds.construct["kind"] == "parametric" and ds.construct["ratio"] == cell.ratio
        assert ds.construct["n_train"] == cell.train_images
        assert (ds.construct["n_val"], ds.construct["n_test"]) == (grid["val_images"], grid["test_images"])
        assert ds.runs == tuple(f"s{seed}" for seed in grid["seeds"])
        for method in spec.methods:
            run = experiment.run(cell.dataset, method, ds.runs[0])  # an ordinary run
            budgets.add((run.training.epochs, run.training.batch_size, run.training.lr))
    assert len(budgets) == 1  # the same epochs, batch and learning rate for every method in every cell
    assert not set(spec.methods) & set(DEFAULT["methods"])
    for table in experiment.tables():
        assert not {d for d, _ in experiment.table(table).rows} & {c.dataset for c in cells}


def test_no_block_no_sweep():
    config = copy.deepcopy(DEFAULT)
    del config["learnability"]
    experiment = zconfig.prepare(config)
    assert experiment.learnability is None
    assert not [name for name in experiment.datasets if name.startswith("learn_")]


def test_construct_options_and_model_params_reach_every_cell(tmp_path):
    (tmp_path / "bg").mkdir()
    Image.new("RGB", (32, 32), (10, 20, 30)).save(tmp_path / "bg" / "one.png")

    def change(block):
        block["construct"] = {"image_size": 128, "background": str(tmp_path / "bg"), "regions": 3}
        block["model_params"]["ats"]["n"] = 7

    experiment = zconfig.prepare(_with(change))
    for cell in experiment.learnability.cells():
        ds = experiment.datasets[cell.dataset]
        assert ds.construct["background"] == str(tmp_path / "bg") and ds.construct["regions"] == 3
        assert experiment.model(cell.dataset, "sweep_ats").params.n == 7
    assert experiment.learnability.image_size() == 128


@pytest.mark.parametrize(
    "change, key",
    [
        (lambda b: b.update(ratios=[0.1, 0.7]), "learnability.ratios"),
        (lambda b: b.update(ratios=[]), "learnability.ratios"),
        (lambda b: b.update(ratios=[0.01, 0.01]), "learnability.ratios"),
        (lambda b: b.update(ratios=[0.00001]), "learnability.ratios"),  # under five texture periods
        (lambda b: b.update(ratios=[0.3]), "learnability.ratios"),  # two regions of 0.3: more than half
        (lambda b: b.update(train_images=[24, 25]), "learnability.train_images"),
        (lambda b: b.update(train_images=[0]), "learnability.train_images"),
        (lambda b: b.update(test_images=9), "learnability.test_images"),
        (lambda b: b.update(val_images=3), "learnability.val_images"),
        (lambda b: b.update(val_images=0), "learnability.val_images"),  # a run would carve one from training
        (lambda b: b.update(seeds=[0, 0]), "learnability.seeds"),
        (lambda b: b.update(shape="round"), "learnability"),
        (lambda b: b.pop("methods"), "learnability"),
        (lambda b: b.update(methods={}), "learnability.methods"),
        (lambda b: b["construct"].update(ratio=0.5), "learnability.construct.ratio"),
        (lambda b: b["construct"].update(n_train=10), "learnability.construct.n_train"),
        (lambda b: b["construct"].update(kind="colon"), "learnability.construct.kind"),
        (lambda b: b["construct"].update(colour="red"), "learnability.construct.colour"),
        (lambda b: b["construct"].update(cue_cell=5), "learnability.construct.cue_cell"),
        (lambda b: b["construct"].update(background="/no/such/folder"), "learnability.construct.background"),
        (lambda b: b["methods"].update(ats={"model": "ats", "label": "ATS"}), "learnability.methods.ats"),
        (lambda b: b["methods"]["sweep_ats"].update(training={"epochs": 50}), "learnability.methods.sweep_ats"),
        (lambda b: b["methods"]["sweep_ats"].update(model="nope"), "learnability.methods.sweep_ats.model"),
        (lambda b: b["methods"]["sweep_ats"]["params"].update(n=0), "learnability.methods.sweep_ats.params.n"),
        (lambda b: b["model_params"]["zoomin"].update(s1=2.0), "learnability.model_params.zoomin.s1"),
        (lambda b: b["training"].update(epochs=0), "learnability.training.epochs"),
    ],
)
def test_bad_values_are_refused_naming_the_key(change, key):
    """The key, or for a bad item of a list, the item (``learnability.ratios.1``)."""
    with pytest.raises(ConfigError) as caught:
        zconfig.prepare(_with(change))
    assert caught.value.key == key or caught.value.key.removeprefix(key + ".").isdigit(), caught.value


def test_a_generated_dataset_may_not_shadow_a_config_dataset():
    config = copy.deepcopy(DEFAULT)
    name = cell_name(config["learnability"]["ratios"][0], config["learnability"]["train_images"][0])
    config["datasets"][name] = copy.deepcopy(config["datasets"]["needle_mnist"])
    with pytest.raises(ConfigError, match=name) as caught:
        zconfig.prepare(config)
    assert caught.value.key == "learnability"


def test_the_paper_config_has_a_sweep_at_the_paper_datasets_scale():
    experiment = zconfig.load(REPO / "config" / "paper.yaml")
    spec = experiment.learnability
    assert spec is not None and spec.image_size() >= 1000
    assert max(spec.grid.train_images) >= 500 and len(spec.grid.seeds) >= 3
    assert {m["model"] for m in spec.methods.values()} >= {"cnn", "ats", "zoomin"}


@pytest.mark.workflow
def test_the_sweep_is_its_own_target_and_not_part_of_all(tmp_path):
    """`snakemake learnability` plans one construction and view cache per cell and every method's
    runs on it; `all` plans none of the sweep's jobs (no training, curves or attention figures)."""
    workdir = copy_workflow(tmp_path)
    grid = DEFAULT["learnability"]
    cells = len(grid["ratios"]) * len(grid["train_images"])
    sweep = snakemake(workdir, "learnability", "-n")
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", sweep.stdout, flags=re.MULTILINE))
    assert int(counts["construct_dataset"]) == int(counts["build_views"]) == cells
    assert int(counts["train"]) == cells * len(grid["methods"]) * len(grid["seeds"])
    assert int(counts["learnability"]) == 1
    everything = snakemake(workdir, "all", "-n")
    assert everything.returncode == 0, everything.stderr[-3000:]
    assert "learn_r" not in everything.stdout and "learnability" not in everything.stdout
