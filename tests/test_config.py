"""The config schema and cross-field checks reject bad values with a message naming the key."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

import zoomin.config as zconfig
from zoomin.errors import ConfigError
from workflow_helpers import REPO, TINY_CONFIG, copy_workflow, snakemake

DEFAULT = yaml.safe_load((REPO / "config" / "config.yaml").read_text())


@pytest.mark.parametrize("path", ["config/config.yaml", "tests/data/tiny_config.yaml"])
def test_shipped_configs_are_valid(path):
    zconfig.load(REPO / path)


def _with(change):
    config = copy.deepcopy(DEFAULT)
    change(config)
    return config


BAD = {
    "s1 >= 1": (lambda c: c["datasets"]["colon"]["model_params"]["zoomin"].update(s1=2), "datasets.colon.model_params.zoomin.s1"),
    "s2 <= s1": (lambda c: c["datasets"]["colon"]["model_params"]["zoomin"].update(s2=0.05), "datasets.colon.model_params.zoomin.s2"),
    "N < 1": (lambda c: c["datasets"]["colon"]["model_params"]["zoomin"].update(n=0), "datasets.colon.model_params.zoomin.n"),
    "P > T": (lambda c: c["datasets"]["colon"]["model_params"]["zoomin"].update(subtile=300), "datasets.colon.model_params.zoomin.subtile"),
    "unknown method": (lambda c: c["datasets"]["colon"]["methods"].append("resnet_magic"), "datasets.colon.methods"),
    "unknown model type": (lambda c: c["methods"].update(x={"model": "vit", "label": "x"}), "methods.x.model"),
    "unknown source": (lambda c: c["datasets"]["colon"].update(source="imagenet"), "datasets.colon.source"),
    "dataset name with shell characters": (lambda c: c["datasets"].update({"a;rm -rf": c["datasets"]["colon"]}), "datasets"),
    "negative lr": (lambda c: c["datasets"]["colon"]["training"].update(lr=-1), "datasets.colon.training.lr"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_values_are_rejected_naming_the_key(case):
    change, key = BAD[case]
    config = _with(change)
    with pytest.raises(ConfigError) as info:
        zconfig.validate(config)
        zconfig.check(config)
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


def test_lint_is_clean(tmp_path):
    result = snakemake(REPO, "--lint")
    assert result.returncode == 0, result.stdout + result.stderr
