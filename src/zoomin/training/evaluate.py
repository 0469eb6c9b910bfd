"""Evaluating one trained run: test accuracy (and ROC AUC), then per-image inference cost (batch 1).

Accuracy uses the run's test-time sampling (seeded Monte Carlo draws, or deterministic top-N),
each test image scored alone with its own generator and its class probabilities averaged over
``training.test_draws`` draws (:func:`zoomin.training.inference.image_prediction`,
what ``zoomin predict`` uses too); the metrics keep every test image's class probabilities and,
for a two-class dataset, the ROC AUC of the second class (``positive`` in every two-class dataset
here) against the first; it is ``null`` when the test set holds one class only. How much a
prediction moves between draws: ``draw_spread``, per image the standard deviation over the draws
of the predicted class's probability (0 for a model that draws nothing, ``null`` for a sampling
model evaluated with one draw), and ``draw_spread_mean``, its mean over the images. How many draws
N each image's stage 1 took (``n_per_image``; ``null`` for a model without counted draws), and
``n_mean``, their mean: the same for every image with a fixed N, the image's own with N from the
data (``n_rule: perplexity``, :mod:`zoomin.models.adaptive_draws`).

MACs, FLOPs, peak memory and time are measured with the same sampling over ``measure.images`` test
images (:func:`zoomin.measure.measure_across_images`: the peak memory over them, the time and MACs
of the largest; ``cost_basis`` in the metrics says which number is which). The seed and device are
recorded with the numbers.
"""

from __future__ import annotations

import json
import logging
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoomin.atomic import atomic_path
from zoomin.config.run import RunSpec
from zoomin.config.runs import Stream, stream_seed
from zoomin.data.splits import load_run_data
from zoomin.measure import measure_across_images
from zoomin.training.checkpoints import load_trained_model
from zoomin.training.device import choose_device
from zoomin.training.inference import score_images

log = logging.getLogger(__name__)


def two_class_auc(labels: list[int], probabilities: torch.Tensor) -> float | None:
    """ROC AUC of class 1 scored by its probability; None when the labels hold one class only.

    The area under the ROC curve is the Mann-Whitney statistic: the fraction of (class 1, class 0)
    pairs of images in which the class-1 image scores higher, a tie counting half. Counted here in
    integers from mid-ranks (one division at the end) instead of with scikit-learn, whose import
    (with scipy and pandas) took 0.5 s of a two-class training job on a quiet 2-core machine, 3-5 s
    loaded (benchmarks/README.md, "Job start-up")."""
    if len(set(labels)) < 2:
        return None
    scores = probabilities[:, 1].double().numpy()
    positive = np.asarray(labels) == 1
    _, group, tied = np.unique(scores, return_inverse=True, return_counts=True)
    twice_mid_rank = 2 * np.cumsum(tied) - tied + 1  # of each group of equal scores, ranks from 1
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    twice_u = int(twice_mid_rank[group[positive]].sum()) - n_pos * (n_pos + 1)
    return twice_u / (2 * n_pos * n_neg)


def mean_spread(spreads: list[float | None]) -> float | None:
    """The mean of the per-image draw spreads; ``None`` when any is unknown (one draw of a sampling model)."""
    if not spreads or any(spread is None for spread in spreads):
        return None
    return sum(spreads) / len(spreads)  # type: ignore[arg-type]


def mean_sample_size(sample_sizes: list[int | None]) -> float | None:
    """The mean N over the test images; ``None`` when the model has no counted draws."""
    known = [n for n in sample_sizes if n is not None]
    return sum(known) / len(known) if known and len(known) == len(sample_sizes) else None


def evaluate(spec: RunSpec, views: Path, model_path: Path, out_metrics: Path) -> dict[str, Any]:
    """Write ``out_metrics`` (JSON) for the model of ``spec`` at ``model_path``; return the metrics."""
    device = choose_device(spec.settings.device)
    sampling = spec.training.sampling_at_test
    data = load_run_data(views, spec.run, spec.n_folds)
    model, meta = load_trained_model(model_path, device)
    draws = spec.training.test_draws
    test_images = (data.test.image(i) for i in range(len(data.test)))
    scores = score_images(model, test_images, device, spec.seed, sampling, draws)
    probabilities, spreads, sample_sizes = scores.probabilities, scores.spreads, scores.sample_sizes
    predictions = probabilities.argmax(1).tolist()
    labels = [data.test.label(i) for i in range(len(data.test))]
    correct = sum(int(p == y) for p, y in zip(predictions, labels))
    accuracy = 100.0 * correct / len(labels)
    auc = two_class_auc(labels, probabilities) if len(data.classes) == 2 else None
    log.info(
        "run %s: test accuracy %.2f%% (%d/%d)%s", spec.run, accuracy, correct, len(labels),
        "" if auc is None else f", AUC {auc:.3f}",
    )

    cost = measure_across_images(
        model, [(data.test.image_id(i), data.test.image(i)) for i in range(len(data.test))], device,
        seed=stream_seed(spec.seed, Stream.COST), count=spec.measure.images, repeats=spec.measure.repeats,
        warmup=spec.measure.warmup, sampling=sampling, budget_s=spec.measure.budget_s,
    )
    metrics = {
        "dataset": spec.dataset,
        "method": spec.method,
        "run": spec.run,
        "seed": spec.seed,
        "accuracy": accuracy,
        "n_test": len(labels),
        "auc": auc,
        "predictions": predictions,
        "labels": labels,
        "image_ids": list(data.test.image_ids),
        "probabilities": probabilities.tolist(),
        "sampling": sampling,
        "test_draws": draws,
        "draw_spread": spreads,
        "draw_spread_mean": mean_spread(spreads),
        "n_per_image": sample_sizes,
        "n_mean": mean_sample_size(sample_sizes),
        **cost,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "model_type": meta["model_type"],
        "best_epoch": meta.get("best_epoch"),
        "epochs": spec.training.epochs,
        "torch": str(torch.__version__),
    }
    with atomic_path(out_metrics) as tmp:
        tmp.write_text(json.dumps(metrics, indent=2))
    return metrics
