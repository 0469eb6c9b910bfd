"""N from the data is reported: ``metrics.json`` (``n_per_image``, ``n_mean``) and ``zoomin predict``'s
``predictions.csv`` (``n``) give each image's N, the same for the same image and seed.

A K = 3 ``zoomin_k`` with ``n_rule: perplexity`` trains one epoch on the small colon stand-in of
tests/training/test_every_model_type.py, then is evaluated and predicts on two test images.
"""

from __future__ import annotations

import csv
import json

import pytest

from tests.models.test_registry import SMALL
from tests.training.test_every_model_type import small_views  # noqa: F401  (the fixture)
from zoomin.config.run import MeasureConfig, ModelSpec, RunSettings, RunSpec, TrainingConfig
from zoomin.models.registry import model_type
from zoomin.predict import predict
from zoomin.training.evaluate import evaluate
from zoomin.training.loop import RunOutputs, train

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("single_thread")]

ADAPTIVE = {**SMALL["zoomin_k"], "n_rule": "perplexity", "n_per_perplexity": 0.5, "n_min": 2, "n_max": 6}


def test_each_images_n_is_in_the_metrics_and_the_predictions(small_views, tmp_path):  # noqa: F811
    spec = RunSpec(
        dataset="colon", method="zoomin_nauto", run="r0f0", seed=0,
        model=ModelSpec("zoomin_k", model_type("zoomin_k").make_params(ADAPTIVE)),
        training=TrainingConfig(epochs=1, batch_size=4),
        measure=MeasureConfig(repeats=1, warmup=0),
        settings=RunSettings(device="cpu"),
        n_folds=2, reference_class="negative",
    )
    outputs = RunOutputs(tmp_path / "checkpoints", tmp_path / "model.pt", tmp_path / "history.csv")
    train(spec, small_views, outputs)
    evaluate(spec, small_views, outputs.model, tmp_path / "metrics.json")
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    sizes = metrics["n_per_image"]
    assert len(sizes) == metrics["n_test"] and all(2 <= n <= 6 for n in sizes)
    assert metrics["n_mean"] == pytest.approx(sum(sizes) / len(sizes))
    assert "draw_spread" in metrics and "accuracy" in metrics  # the fields that were there stay

    constructed = small_views.parent / "constructed"
    paths = [next((constructed / "images").glob(f"{image_id}.*")) for image_id in metrics["image_ids"][:2]]
    predict(outputs.model, paths, tmp_path / "predictions", device="cpu")
    with open(tmp_path / "predictions" / "predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["n"]) for row in rows] == sizes[:2]
