"""A run whose model stops looking at its input (dead ReLUs) says so in its log, once; a live run,
and a run whose batches hold one image each (nothing to compare), do not."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest
import torch

from tests.reliability.reliability_helpers import RESUME_CONFIG
from zoomin.config.load import load
from zoomin.config.run import ModelSpec, RunSettings
from zoomin.training import loop


def _spec(epochs: int, batch_size: int):
    spec = load(RESUME_CONFIG).run("colon", "zoomin_lenet", "r0f0")
    training_config = spec.training.replace(epochs=epochs, batch_size=batch_size, contrastive_start=None)
    return replace(spec, seed=0, training=training_config, settings=RunSettings(device="cpu"))


BUILD = ModelSpec.build


def _with_dead_features(*args, **kwargs):
    model = BUILD(*args, **kwargs)
    with torch.no_grad():
        model.features.body[4].bias.fill_(-1e3)  # every output of the second convolution < 0
    return model


@pytest.mark.parametrize("dead, batch_size, reported", [(True, 2, True), (False, 2, False), (True, 1, False)])
def test_collapsed_model_is_reported_once(colon_views, tmp_path, monkeypatch, caplog, dead, batch_size, reported):
    if dead:
        monkeypatch.setattr(ModelSpec, "build", _with_dead_features)
    outputs = loop.RunOutputs(tmp_path / "ckpt", tmp_path / "model.pt", tmp_path / "history.csv")
    with caplog.at_level(logging.WARNING, logger="zoomin.training.loop"):
        loop.train(_spec(epochs=2, batch_size=batch_size), colon_views, outputs)
    reports = [r.getMessage() for r in caplog.records if "no longer depends on its input" in r.getMessage()]
    if reported:
        assert len(reports) == 1 and "run r0f0, epoch 1" in reports[0] and "another seed" in reports[0]
    else:
        assert reports == []
