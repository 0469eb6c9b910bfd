"""The shipped configs state only what differs from the code's defaults, so editing a default in the
typed records (zoomin.config.run, zoomin.models.params) changes every shipped run that uses it.

A value is *restated* when it equals what its key would be without it, one level down the merge:

* ``device``, ``mixed_precision``, ``measure``, ``resources.train`` and ``predict`` settings: the
  defaults of RunSettings, MeasureConfig, TrainResources and PredictSettings;
* training settings, ``TrainingConfig`` < ``training_defaults`` < ``datasets.<d>.training`` <
  ``methods.<m>.training``;
* model parameters, the record's defaults < ``datasets.<d>.model_params.<type>`` <
  ``methods.<m>.params``.

A method's value is restated only if it equals the lower levels on *every* dataset of the config: a
method can be listed on any of them (the opt-in slide baselines are listed on none), and a value
that matters on one of them is the method's own.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

import zoomin.config.load as zconfig
from tests.workflow.helpers import REPO
from zoomin.config.outputs import PredictSettings
from zoomin.config.run import MeasureConfig, RunSettings, TrainingConfig, TrainResources
from zoomin.models.registry import model_type

SHIPPED = ("config/config.yaml", "config/paper.yaml", "tests/configs/tiny_config.yaml")

# (config, key path) -> why the value stays although it equals the default below it. Each is a
# setting of a baseline's reference implementation (docs/methods.md) that happens to equal the colon
# setting of `training_defaults`: it must not follow an edit of the colon setting.
ALLOWED = {
    ("config/paper.yaml", "methods.mil.training.epochs"): "Campanella et al.'s 100 epochs, not colon's",
    ("config/paper.yaml", "methods.clam.training.weight_decay"): "CLAM's main.py weight decay, not colon's",
    ("config/paper.yaml", "methods.mrmil.training.weight_decay"): "CLAM's weight decay (MRMIL's chosen optimiser), not colon's",
}


def _written(block: Mapping[str, Any] | None, prefix: str, lower: Mapping[str, Any]) -> Iterator[str]:
    """Key paths of ``block`` whose value equals ``lower``'s (the value without it)."""
    for key, value in (block or {}).items():
        if key in lower and lower[key] == value:
            yield f"{prefix}.{key}" if prefix else key


def restated(config: Mapping[str, Any]) -> set[str]:
    """Key paths of ``config`` (a schema-valid config dict) whose value restates the level below."""
    datasets = config["datasets"]
    found = set(_written({k: config[k] for k in ("device", "mixed_precision") if k in config}, "", RunSettings().to_dict()))
    found |= set(_written(config.get("measure"), "measure", MeasureConfig().to_dict()))
    found |= set(_written((config.get("resources") or {}).get("train"), "resources.train", TrainResources().to_dict()))
    predict = {k: v for k, v in (config.get("predict") or {}).items() if k != "datasets"}
    found |= set(_written(predict, "predict", PredictSettings().to_dict()))

    training = TrainingConfig().to_dict()
    training_defaults = config.get("training_defaults") or {}
    found |= set(_written(training_defaults, "training_defaults", training))
    training = {**training, **training_defaults}
    for name, ds in datasets.items():
        found |= set(_written(ds.get("training"), f"datasets.{name}.training", training))
        for kind, params in (ds.get("model_params") or {}).items():
            found |= set(_written(params, f"datasets.{name}.model_params.{kind}", model_type(kind).params().to_dict()))

    def below_method(section: str, kind: str, ds: Mapping[str, Any]) -> dict[str, Any]:
        if section == "training":
            return {**training, **(ds.get("training") or {})}
        return {**model_type(kind).params().to_dict(), **(ds.get("model_params") or {}).get(kind, {})}

    for name, method in config["methods"].items():
        for section in ("training", "params"):
            per_dataset = [
                set(_written(method.get(section), f"methods.{name}.{section}", below_method(section, method["model"], ds)))
                for ds in datasets.values()
            ]
            found |= set.intersection(*per_dataset)
    return found


@pytest.mark.parametrize("path", SHIPPED)
def test_a_shipped_config_states_only_what_differs_from_the_defaults(path):
    zconfig.load(REPO / path)  # valid, typed: the check below reads a config the workflow accepts
    found = restated(zconfig.read_yaml(REPO / path))
    unexplained = sorted(key for key in found if (path, key) not in ALLOWED)
    assert not unexplained, (
        f"{path} restates the default below these keys; delete them (the code's default is the "
        f"setting) or, if the value must stay, add it to ALLOWED with the reason: {unexplained}"
    )


def test_every_allowed_restatement_is_still_one():
    """An entry whose value was changed or removed would keep excusing nothing: remove it."""
    stale = [
        (path, key) for path in SHIPPED for key in [k for p, k in ALLOWED if p == path]
        if key not in restated(zconfig.read_yaml(REPO / path))
    ]
    assert not stale
    assert {path for path, _ in ALLOWED} <= set(SHIPPED)


def _minimal() -> dict[str, Any]:
    return {
        "seed": 0,
        "methods": {
            "zoomin_a": {"model": "zoomin", "label": "A"},
            "zoomin_b": {"model": "zoomin", "label": "B", "params": {"n": 30}, "training": {"lr": 1.0e-2}},
        },
        "datasets": {
            name: {"block": name, "source": "synthetic", "runs": {"seeds": [0]}, "methods": ["zoomin_a"]}
            for name in ("one", "two")
        },
    }


def test_the_check_finds_a_restatement_at_every_level_and_nothing_else():
    config = _minimal()
    assert restated(config) == set()
    config["device"] = RunSettings().device
    config["measure"] = {"repeats": MeasureConfig().repeats, "warmup": MeasureConfig().warmup + 1}
    config["training_defaults"] = {"lr": TrainingConfig().lr, "epochs": 3}
    config["datasets"]["one"]["training"] = {"epochs": 3, "batch_size": 1}
    config["datasets"]["one"]["model_params"] = {"zoomin": {"n": 30, "tile": 250}}
    zconfig.prepare(config)
    assert restated(config) == {
        "device",
        "measure.repeats",
        "training_defaults.lr",
        "datasets.one.training.epochs",
        "datasets.one.model_params.zoomin.tile",
    }
    # zoomin_b's n = 30 is dataset one's, but not dataset two's: it stays its own until two says so
    config["datasets"]["two"]["model_params"] = {"zoomin": {"n": 30}}
    assert "methods.zoomin_b.params.n" in restated(config)
    config["datasets"]["two"]["training"] = {"lr": 1.0e-2}
    assert "methods.zoomin_b.training.lr" not in restated(config)  # dataset one still has the default
    config["datasets"]["one"]["training"]["lr"] = 1.0e-2
    assert "methods.zoomin_b.training.lr" in restated(config)
