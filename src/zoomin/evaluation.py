"""Evaluating one trained run: test accuracy, then per-image inference cost (batch 1).

Accuracy uses the configured test-time sampling (seeded Monte Carlo draws, or deterministic top-N).
FLOPs, peak memory and time come from :func:`zoomin.measure.measure_inference` on the first test
image; the seed and device are recorded with the numbers.
"""

from __future__ import annotations

import json
import logging
import platform
from pathlib import Path
from typing import Any

import torch

from zoomin.atomic import atomic_path
from zoomin.checkpoints import load_trained_model
from zoomin.data.splits import load_run_data
from zoomin.device import choose_device
from zoomin.measure import measure_inference
from zoomin.training import predict

log = logging.getLogger(__name__)


def evaluate(
    views: Path,
    model_path: Path,
    dataset_config: dict[str, Any],
    run: str,
    seed: int,
    sampling: str,
    out_metrics: Path,
    device: str = "auto",
    repeats: int = 5,
    warmup: int = 2,
) -> dict[str, Any]:
    torch_device = choose_device(device)
    data = load_run_data(views, dataset_config, run)
    model, meta = load_trained_model(model_path, torch_device)
    predictions = predict(model, data.test, torch_device, seed, sampling)
    labels = [data.test.label(i) for i in range(len(data.test))]
    correct = sum(int(p == y) for p, y in zip(predictions, labels))
    accuracy = 100.0 * correct / len(labels)
    log.info("run %s: test accuracy %.2f%% (%d/%d)", run, accuracy, correct, len(labels))

    cost = measure_inference(model, data.test.image(0), torch_device, seed=seed, repeats=repeats, warmup=warmup)
    metrics = {
        "run": run,
        "seed": seed,
        "accuracy": accuracy,
        "n_test": len(labels),
        "predictions": predictions,
        "labels": labels,
        "sampling": sampling,
        "gflops": cost["gflops"],
        "peak_memory_mb": cost["peak_memory_mb"],
        "time_ms": cost["time_ms"],
        "device": str(torch_device),
        "device_name": torch.cuda.get_device_name(torch_device) if torch_device.type == "cuda" else platform.processor() or "cpu",
        "model_type": meta["model_type"],
        "best_epoch": meta.get("best_epoch"),
        "torch": str(torch.__version__),
    }
    with atomic_path(out_metrics) as tmp:
        tmp.write_text(json.dumps(metrics, indent=2))
    return metrics
