"""A run whose model stops looking at its input (dead ReLUs) says so in its log, once; a live run,
and a run whose batches hold one image each (nothing to compare), do not."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from reliability_helpers import RESUME_CONFIG

from zoomin import config as zconfig
from zoomin import training


def _job(views: Path, out: Path, epochs: int, batch_size: int) -> training.TrainingJob:
    config = zconfig.load(RESUME_CONFIG)
    return training.TrainingJob(
        views=views, model_type="zoomin", model_params=zconfig.model_params(config, "colon", "zoomin_lenet"),
        training={**zconfig.training(config, "colon", "zoomin_lenet"), "epochs": epochs, "batch_size": batch_size,
                  "contrastive_start": None},
        dataset_config=config["datasets"]["colon"], run="r0f0", seed=0, checkpoint_dir=out / "ckpt",
        out_model=out / "model.pt", out_history=out / "history.csv", device="cpu",
    )


BUILD = training.build_model


def _with_dead_features(*args, **kwargs):
    model = BUILD(*args, **kwargs)
    with torch.no_grad():
        model.features.body[4].bias.fill_(-1e3)  # every output of the second convolution < 0
    return model


@pytest.mark.parametrize("dead, batch_size, reported", [(True, 2, True), (False, 2, False), (True, 1, False)])
def test_collapsed_model_is_reported_once(colon_views, tmp_path, monkeypatch, caplog, dead, batch_size, reported):
    if dead:
        monkeypatch.setattr(training, "build_model", _with_dead_features)
    with caplog.at_level(logging.WARNING, logger="zoomin.training"):
        training.train(_job(colon_views, tmp_path, epochs=2, batch_size=batch_size))
    reports = [r.getMessage() for r in caplog.records if "no longer depends on its input" in r.getMessage()]
    if reported:
        assert len(reports) == 1 and "run r0f0, epoch 1" in reports[0] and "another seed" in reports[0]
    else:
        assert reports == []
