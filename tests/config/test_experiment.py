"""Queries the workflow asks of an Experiment, answered from the model registry's records."""

from __future__ import annotations

import copy

import pytest
import yaml

import zoomin.config.load as zconfig
from tests.workflow.helpers import REPO, TINY_CONFIG, copy_workflow, snakemake
from zoomin.models.registry import MODEL_TYPES

DEFAULT = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
METHOD_OF_TYPE = {spec["model"]: name for name, spec in reversed(DEFAULT["methods"].items())}


def test_the_default_config_names_a_method_of_every_model_type():
    assert set(METHOD_OF_TYPE) == set(MODEL_TYPES)


@pytest.mark.parametrize("model_type", sorted(MODEL_TYPES))
def test_the_memory_figure_marks_the_tiles_of_the_first_model_that_cuts_tiles(model_type):
    """Whatever model is listed first (RA-CNN is drawn as two stages but cuts no tiles), the tile
    side comes from the records' ``tile_size``: the first listed model's own, else Zoom-In's."""
    config = copy.deepcopy(DEFAULT)
    first = METHOD_OF_TYPE[model_type]
    config["figures"]["memory"]["methods"] = [first, "zoomin_lenet"]
    experiment = zconfig.prepare(config)
    own = experiment.model("colon", first).params.tile_size()
    assert experiment.tile_size("colon", [first, "zoomin_lenet"]) == (own if own is not None else 250)
    assert experiment.tile_size("colon", [first]) == own


@pytest.mark.slow
def test_a_dag_with_racnn_first_in_the_memory_figure_plans(tmp_path):
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["methods"]["racnn"] = {"model": "racnn", "label": "RA-CNN", "params": {"width": 4, "scale": 0.5, "crop_size": 32}}
    config["figures"]["memory"]["methods"] = ["racnn", "zoomin_lenet", "ats"]
    config["datasets"]["colon"]["methods"].append("racnn")
    workdir = copy_workflow(tmp_path)
    path = workdir / "racnn_first.yaml"
    path.write_text(yaml.safe_dump(config))
    result = snakemake(workdir, "results/figures/memory.png", "-n", "--configfile", str(path))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "plot_memory" in result.stdout
