"""The config schema and cross-field checks reject bad values with a message naming the key."""

from __future__ import annotations

import copy
import dataclasses
import os
import subprocess
import sys

import pytest
import yaml

import zoomin.config.load as zconfig
from tests.workflow.helpers import REPO, TINY_CONFIG, copy_workflow, snakemake
from zoomin.config.run import MeasureConfig, TrainingConfig
from zoomin.config.runs import run_ids, run_seed
from zoomin.errors import ConfigError
from zoomin.models.params import FEATURE_NETS
from zoomin.models.registry import MODEL_TYPES

DEFAULT = yaml.safe_load((REPO / "config" / "config.yaml").read_text())


@pytest.mark.parametrize("path", ["config/config.yaml", "tests/configs/tiny_config.yaml"])
def test_shipped_configs_are_valid(path):
    zconfig.load(REPO / path)


def trained_types(path: str) -> set[str]:
    experiment = zconfig.load(REPO / path)
    return {experiment.model(d, m).type for d, m in experiment.trained()}


OPT_IN = {"clam_sb", "mil", "ips"}


def test_every_model_type_is_trained_by_the_paper_config_and_the_default_but_the_opt_in_ones():
    """CLAM-SB, MIL and IPS read every tissue instance of a slide at full resolution ~50 times per
    run (5-10 CPU-minutes each on the slide block): the default leaves them out to stay within the
    budget of `snakemake all`; `datasets.camelyon16_synthetic.methods` takes them (docs/methods.md).
    Every type, opt-in ones too, trains in process in tests/training/test_every_model_type.py."""
    assert trained_types("config/paper.yaml") == set(MODEL_TYPES)
    assert trained_types("config/config.yaml") == set(MODEL_TYPES) - OPT_IN
    assert {"clam", "mil", "ips"} <= set(DEFAULT["methods"])  # defined, ready to be listed


def _with(change):
    config = copy.deepcopy(DEFAULT)
    change(config)
    return config


def _colon_zoomin(config):
    """The colon block's Zoom-In parameters (absent where the config takes the defaults)."""
    return config["datasets"]["colon"].setdefault("model_params", {}).setdefault("zoomin", {})


BAD = {
    "s1 >= 1": (lambda c: _colon_zoomin(c).update(s1=2), "datasets.colon.model_params.zoomin.s1"),
    "s2 <= s1": (lambda c: _colon_zoomin(c).update(s2=0.05), "datasets.colon.model_params.zoomin.s2"),
    "N < 1": (lambda c: _colon_zoomin(c).update(n=0), "datasets.colon.model_params.zoomin.n"),
    "P > T": (lambda c: _colon_zoomin(c).update(subtile=300), "datasets.colon.model_params.zoomin.subtile"),
    "unknown method": (lambda c: c["datasets"]["colon"]["methods"].append("resnet_magic"), "datasets.colon.methods"),
    "unknown model type": (lambda c: c["methods"].update(x={"model": "vit", "label": "x"}), "methods.x.model"),
    "unknown source": (lambda c: c["datasets"]["colon"].update(source="imagenet"), "datasets.colon.source"),
    "dataset name with shell characters": (lambda c: c["datasets"].update({"a;rm -rf": c["datasets"]["colon"]}), "datasets"),
    "negative lr": (lambda c: c["datasets"]["colon"].setdefault("training", {}).update(lr=-1), "datasets.colon.training.lr"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_values_are_rejected_naming_the_key(case):
    change, key = BAD[case]
    config = _with(change)
    with pytest.raises(ConfigError) as info:
        zconfig.prepare(config)
    assert key in str(info.value)


def test_snakemake_rejects_s1_of_2_before_any_job(tmp_path):
    workdir = copy_workflow(tmp_path)
    bad = yaml.safe_load(TINY_CONFIG.read_text())
    bad["datasets"]["colon"]["model_params"]["zoomin"]["s1"] = 2
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    result = snakemake(workdir, "all", "-n", "--configfile", "bad.yaml")
    assert result.returncode != 0
    message = result.stdout + result.stderr
    assert "s1" in message and "2" in message
    assert not (workdir / "results").exists()
    # one short line naming the key, the value and the bound; no dump of the schema
    lines = [line for line in message.splitlines() if "zoomin: error:" in line]
    assert len(lines) == 1 and "datasets.colon.model_params.zoomin.s1" in lines[0] and len(lines[0]) < 200
    assert "Failed validating" not in message and "definitions" not in message


def test_lint_is_clean():
    result = snakemake(REPO, "--lint")
    assert result.returncode == 0, result.stdout + result.stderr


def test_method_overrides_name_their_own_key():
    config = _with(lambda c: c["methods"]["zoomin_lenet"].update(params={"s2": 0.01}))
    with pytest.raises(ConfigError, match=r"methods\.zoomin_lenet\.params\.s2"):
        zconfig.prepare(config)
    config = _with(lambda c: c["methods"]["ats"].update(training={"epochs": 0}))
    with pytest.raises(ConfigError, match=r"methods\.ats\.training\.epochs"):
        zconfig.prepare(config)


def test_pretraining_a_model_without_tile_classifiers_is_refused():
    config = _with(lambda c: c["methods"]["ats"].update(training={"pretrain_epochs": 1}))
    with pytest.raises(ConfigError, match=r"methods\.ats\.training\.pretrain_epochs.*attention sampling"):
        zconfig.prepare(config)
    zconfig.prepare(_with(lambda c: c["methods"]["zoomin_lenet"].update(training={"pretrain_epochs": 1})))


def test_training_defaults_fill_what_no_layer_sets():
    config = _with(lambda c: [ds.pop("training", None) for ds in c["datasets"].values()])
    config.pop("training_defaults")
    experiment = zconfig.prepare(config)
    assert experiment.training("colon", "zoomin_lenet") == TrainingConfig()
    assert experiment.run("colon", "zoomin_lenet", "r0f0").measure == MeasureConfig(**DEFAULT.get("measure", {}))


def test_model_params_blocks_of_the_schema_come_from_the_registry():
    blocks = zconfig.schema()["definitions"]["model_params"]["properties"]
    assert set(blocks) == set(MODEL_TYPES)
    for name, record in MODEL_TYPES.items():
        assert set(blocks[name]["properties"]) == {f.name for f in dataclasses.fields(record.params)}
    zoomin = blocks["zoomin"]["properties"]
    assert zoomin["s1"] == {"type": "number", "exclusiveMinimum": 0.0, "maximum": 1.0, "description": zoomin["s1"]["description"]}
    assert zoomin["feature"]["enum"] == list(FEATURE_NETS)


def test_run_seeds_are_one_to_one_within_the_allowed_ranges():
    seeds = {run_seed(config_seed, run) for config_seed in range(3) for run in run_ids({"folds": 100, "repetitions": 10})}
    assert len(seeds) == 3 * 100 * 10
    seeds = {run_seed(config_seed, run) for config_seed in range(3) for run in run_ids({"seeds": [0, 1, 999]})}
    assert len(seeds) == 9
    with pytest.raises(ConfigError, match=r"datasets\.colon\.runs\.seeds"):
        zconfig.prepare(_with(lambda c: c["datasets"]["colon"].update(runs={"seeds": [1000]})))
    with pytest.raises(ConfigError, match="folds"):
        run_ids({"folds": 101}, "datasets.colon.runs")


@pytest.mark.slow
def test_a_non_editable_install_trains_from_a_config(tmp_path):
    """The schema ships with the package: a wheel installed elsewhere validates configs by itself."""
    target = tmp_path / "site"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--target", str(target), str(REPO)],
        capture_output=True, text=True,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    assert (target / "zoomin" / "config" / "schemas" / "config.schema.yaml").is_file()
    code = "import zoomin.config.load, sys; e = zoomin.config.load.load(sys.argv[1]); print(zoomin.__file__, len(e.datasets))"
    env = dict(os.environ, PYTHONPATH=str(target))
    result = subprocess.run(
        [sys.executable, "-c", code, str(TINY_CONFIG)], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    expected = len(zconfig.read_yaml(TINY_CONFIG)["datasets"])
    assert str(target) in result.stdout and result.stdout.split()[-1] == str(expected)
