"""Every model type of the registry trains, evaluates and predicts end to end, in process.

The whole-DAG test (tests/workflow/) covers the workflow's paths with a few model types; this is
where every type goes through the same calls its `train` job and `zoomin predict` make: one epoch
of :func:`zoomin.training.loop.train` on a small view cache, :func:`zoomin.training.evaluate.evaluate`,
then :func:`zoomin.predict.predict` on a test image, which must give the probabilities the
evaluation recorded for it (same model, image and seed).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from tests.models.test_registry import SMALL
from zoomin.config.run import MeasureConfig, ModelSpec, RunSettings, RunSpec, TrainingConfig
from zoomin.data.sources import construct_dataset
from zoomin.data.view_cache import build_view_cache
from zoomin.models.registry import MODEL_TYPES, model_type
from zoomin.predict import predict
from zoomin.training.evaluate import evaluate
from zoomin.training.loop import RunOutputs, train

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("single_thread")]


@pytest.fixture(scope="module")
def small_views(tmp_path_factory) -> Path:
    """A cross-validated colon stand-in of 12 images of 96 px, its views at every scale SMALL reads."""
    root = tmp_path_factory.mktemp("every_model")
    construct_dataset("synthetic", None, root / "constructed", name="colon",
                      params={"kind": "colon", "n_images": 12, "image_size": 96, "seed": 0})
    scales = set()
    for name, values in SMALL.items():
        params = model_type(name).make_params(values)
        scales.update(params.view_scales() + params.region_scales())
    build_view_cache(root / "constructed", sorted(s for s in scales if s < 1), root / "views.h5", progress=False)
    return root / "views.h5"


def test_every_registered_type_is_exercised():
    assert set(SMALL) == set(MODEL_TYPES)


@pytest.mark.parametrize("name", sorted(MODEL_TYPES))
def test_trains_evaluates_and_predicts(name, small_views, tmp_path):
    spec = RunSpec(
        dataset="colon", method=name, run="r0f0", seed=0,
        model=ModelSpec(name, model_type(name).make_params(SMALL[name])),
        training=TrainingConfig(epochs=1, batch_size=4),
        measure=MeasureConfig(repeats=1, warmup=0),
        settings=RunSettings(device="cpu"),
        n_folds=2, reference_class="negative",
    )
    outputs = RunOutputs(tmp_path / "checkpoints", tmp_path / "model.pt", tmp_path / "history.csv")
    train(spec, small_views, outputs)
    history = pd.read_csv(outputs.history)
    assert len(history) == 1 and math.isfinite(history.train_loss.iloc[0])

    metrics = evaluate(spec, small_views, outputs.model, tmp_path / "metrics.json")
    assert json.loads((tmp_path / "metrics.json").read_text())["accuracy"] == metrics["accuracy"]
    assert metrics["n_test"] == len(metrics["labels"]) > 0
    assert metrics["gflops"] > 0 and metrics["peak_memory_mb"] > 0 and metrics["time_ms"] > 0

    constructed = small_views.parent / "constructed"
    image_id = metrics["image_ids"][0]
    image = next((constructed / "images").glob(f"{image_id}.*"))
    rows = predict(outputs.model, [image], tmp_path / "predictions", device="cpu")
    assert len(rows) == 1
    probabilities = [rows[0][key] for key in sorted(rows[0]) if key.startswith("p_")]
    assert probabilities == pytest.approx(metrics["probabilities"][0], abs=1e-5)
