"""The learnability map: accuracy of each method per (object-to-image ratio, training-set size).

Every run of the sweep (docs/learnability.md) is an ordinary run with its ``metrics.json`` and
``history.csv``. :func:`collect` reads one row per run: how many test images it got right, its
chance rate (the test set's majority class), what training it spent (epochs, optimiser steps,
seconds) and its inference cost per image (GFLOPs, peak memory). :func:`summarise` gathers the
runs of each (method, ratio, size) cell: their mean accuracy, its Wilson interval
(:func:`zoomin.report.stats.proportion_interval`) and whether that interval lies above chance
(:func:`zoomin.report.stats.learned`), and how many runs learned on their own. The runs of a cell
test on the same images, so the interval counts each test image once: the mean number right over
the runs, out of the number of test images. Pooling the runs' predictions instead would count an
image once per run, as if the runs were independent samples, and their errors are not (two seeds
trained on the same images misjudge the same test images): it made a low-resolution CNN, which
cannot see the cue, look clearly *worse* than chance on one cell of the embedded default.
:func:`smallest_learned` reads the map out: the smallest ratio each method learns at,
per training-set size.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from zoomin.atomic import atomic_path
from zoomin.report.stats import LEVEL, learned, proportion_interval

CELL = ["method", "ratio", "train_images"]
SUMMARY = [
    "method", "label", "ratio", "object_px", "train_images", "runs", "test_images", "mean_correct", "accuracy",
    "low", "high", "chance", "learned", "runs_learned", "run_accuracies", "epochs", "steps", "train_seconds",
    "gflops", "memory_mb",
]


@dataclass(frozen=True)
class SweepRun:
    """One run of the sweep: its cell, run id, and its metrics and history files."""

    method: str
    ratio: float
    train_images: int
    run: str
    metrics: Path
    history: Path
    batch_size: int
    image_size: int


def collect(runs: Sequence[SweepRun]) -> pd.DataFrame:
    """One row per run: test predictions right and in all, chance rate, the budget it spent."""
    rows = []
    for entry in runs:
        metrics = json.loads(Path(entry.metrics).read_text())
        labels, predictions = metrics["labels"], metrics["predictions"]
        history = pd.read_csv(entry.history)
        epochs = int(metrics["epochs"])
        rows.append({
            "method": entry.method,
            "ratio": entry.ratio,
            "train_images": entry.train_images,
            "object_px": entry.ratio * entry.image_size**2,
            "run": entry.run,
            "correct": sum(int(p == y) for p, y in zip(predictions, labels)),
            "predictions": len(labels),
            "chance": max(labels.count(c) for c in set(labels)) / len(labels),
            "epochs": epochs,
            "steps": epochs * math.ceil(entry.train_images / entry.batch_size),
            "train_seconds": float(history["seconds"].sum()),
            "gflops": metrics.get("gflops", math.nan),
            "memory_mb": metrics.get("peak_memory_mb", math.nan),
        })
    return pd.DataFrame(rows)


def summarise(per_run: pd.DataFrame, labels: Mapping[str, str]) -> pd.DataFrame:
    """One row per (method, ratio, training-set size), methods in the order of ``labels``, ratios
    from the largest, sizes from the smallest. Accuracies and interval ends in %."""
    out = []
    for (method, ratio, size), runs in per_run.groupby(CELL, sort=False):
        if runs.predictions.nunique() != 1:
            raise ValueError(f"the runs of {method} at ratio {ratio}, {size} images tested on different sets")
        images = int(runs.predictions.iloc[0])
        mean_correct = float(runs.correct.mean())
        # Rounded half down: a cell is called learned only if it is at the lower count too.
        low, high = proportion_interval(math.floor(mean_correct), images, LEVEL)
        chance = float(runs.chance.max())
        alone = [
            learned(proportion_interval(int(c), int(n), LEVEL)[0], p)
            for c, n, p in zip(runs.correct, runs.predictions, runs.chance)
        ]
        out.append({
            "method": method,
            "label": labels.get(method, method),
            "ratio": ratio,
            "object_px": float(runs.object_px.iloc[0]),
            "train_images": size,
            "runs": len(runs),
            "test_images": images,
            "mean_correct": mean_correct,
            "accuracy": 100.0 * mean_correct / images,
            "low": 100.0 * low,
            "high": 100.0 * high,
            "chance": 100.0 * chance,
            "learned": learned(low, chance),
            "runs_learned": sum(alone),
            "run_accuracies": " ".join(f"{100.0 * c / n:.1f}" for c, n in zip(runs.correct, runs.predictions)),
            "epochs": int(runs.epochs.max()),
            "steps": int(runs.steps.max()),
            "train_seconds": float(runs.train_seconds.mean()),
            "gflops": float(runs.gflops.mean()),
            "memory_mb": float(runs.memory_mb.mean()),
        })
    table = pd.DataFrame(out, columns=SUMMARY)
    order = {method: i for i, method in enumerate(labels)}
    table["_order"] = table.method.map(lambda m: order.get(m, len(order)))
    table = table.sort_values(["_order", "ratio", "train_images"], ascending=[True, False, True], kind="stable")
    return table.drop(columns="_order").reset_index(drop=True)


def smallest_learned(summary: pd.DataFrame) -> pd.DataFrame:
    """Per method and training-set size, the smallest ratio whose interval lies above chance
    (NaN where none does), with that cell's accuracy and interval."""
    rows = []
    for (method, size), part in summary.groupby(["method", "train_images"], sort=False):
        hits = part[part.learned]
        best = hits.loc[hits.ratio.idxmin()] if not hits.empty else None
        rows.append({
            "method": method,
            "label": part.label.iloc[0],
            "train_images": size,
            "smallest_ratio": math.nan if best is None else best.ratio,
            "accuracy": math.nan if best is None else best.accuracy,
            "low": math.nan if best is None else best.low,
            "high": math.nan if best is None else best.high,
        })
    return pd.DataFrame(rows)


def learnability_report(
    runs: Sequence[SweepRun], labels: Mapping[str, str], out_csv: Path, out_png: Path, title: str = ""
) -> pd.DataFrame:
    """``results/learnability.csv`` (one row per cell) and the map, ``results/figures/learnability.png``."""
    from zoomin.report.draw_learnability import plot_learnability

    summary = summarise(collect(runs), labels)
    with atomic_path(out_csv) as tmp:
        summary.to_csv(tmp, index=False, float_format="%.6g")
    plot_learnability(summary, out_png, title)
    return summary
