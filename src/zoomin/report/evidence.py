"""The evidence of one table row, from its runs and their per-test-image results.

A row is a method on a dataset, run several times (the cross-validation folds of colon, whose test
images are disjoint; elsewhere seed replicates of one fixed split, whose test images recur). Its
number is the mean over its runs. Its uncertainty follows **one rule for every interval**:

    the hull (lowest low, highest high) of
    (a) an interval over the row's distinct test images -- how far another draw of test images
        could move the number, the trained models held fixed -- and
    (b) with two runs or more, the t-interval of the run values (``scipy.stats.t``,
        runs - 1 degrees of freedom) -- how far retraining moves it.

A test image counts once in (a) even when several seed replicates tested it: its result is
averaged over those runs, so a fixed test set of 16 slides is 16 images, not 48. Neither part
alone covers both sources of error on seed replicates, and (b) alone is a point when three runs
agree; the hull is the conservative reading of the two (on folds (b) also holds the test-set
error, and is usually the wider).

* **Accuracy** (%): (a) is the Wilson interval (:func:`~zoomin.report.stats.proportion_interval`)
  of the images' correctness (averaged over runs, summed, rounded to a count).
* **Majority rate** (%): the share of the commonest class among the distinct test images, what a
  constant predictor gets (the best constant, chosen knowing the test labels). **Learned**: the
  accuracy interval lies wholly above it.
* **ROC AUC** (two-class datasets): (a) is a class-stratified bootstrap of the test images
  (:func:`~zoomin.report.stats.auc_interval`; the same draw for every run of a test set). A known
  limit: where every positive outscores every negative (AUC 1) every resample does too, and the
  interval is the point 1; it says nothing of how far other test images could take it, so read
  such a row with its ``n_images``.
* **Paired comparison with the block's reference method** (Zoom-In): runs are paired by run id
  (run k of every method has the same split), and on each paired run the two methods' results on
  the same test images. The difference (points) is the mean over paired runs of the row's accuracy
  minus the reference's; (a) is Bonett and Price's adjusted Wald interval for paired proportions
  (:func:`~zoomin.report.stats.paired_difference_interval`) from the images where the two differ
  (each image's right-minus-wrong averaged over the paired runs). The p-value is the exact sign test
  (``scipy.stats.binomtest``) on the images where the two differ: McNemar's exact test for one
  run, and for several the same test with every image counted once -- pooling each run's
  discordant pairs would count a replicated image k times, and Fisher's combination of per-run
  p-values would need the runs independent, which replicates on one test set are not.

Runs without per-image results (metrics from before they were recorded) leave (a) out; a row with
neither part has no interval (NaN).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from zoomin.errors import UserError
from zoomin.report.stats import (
    NO_INTERVAL,
    auc_interval,
    hull,
    learned,
    majority_rate,
    mean_interval,
    paired_difference_interval,
    proportion_interval,
    sign_test,
)

IMAGE_COLUMNS = ["run", "image_id", "label", "correct", "score"]  # per run and test image


def per_image(metrics: dict[str, Any], run: str) -> pd.DataFrame:
    """One row per test image of a run's ``metrics.json``: its label, whether the prediction was
    right, and the class-1 probability (two-class datasets; NaN otherwise). Empty when the metrics
    lack per-image results."""
    if not all(key in metrics for key in ("predictions", "labels", "image_ids")):
        return pd.DataFrame(columns=IMAGE_COLUMNS)
    probabilities = metrics.get("probabilities") or [[] for _ in metrics["labels"]]
    return pd.DataFrame({
        "run": run,
        "image_id": [str(i) for i in metrics["image_ids"]],
        "label": metrics["labels"],
        "correct": [float(p == y) for p, y in zip(metrics["predictions"], metrics["labels"])],
        "score": [p[1] if len(p) == 2 else math.nan for p in probabilities],
    }, columns=IMAGE_COLUMNS)


def accuracy_evidence(run_accuracy: pd.Series, images: pd.DataFrame) -> dict[str, Any]:
    """``accuracy_low``/``_high`` (%), ``n_images`` (distinct), ``majority_rate`` (%) and ``learned``
    of a row; ``run_accuracy`` indexed by run, ``images`` its :data:`IMAGE_COLUMNS` rows."""
    distinct = images.groupby("image_id").agg(label=("label", "first"), correct=("correct", "mean"))
    over_images = NO_INTERVAL
    if len(distinct):
        low, high = proportion_interval(int(round(distinct.correct.sum())), len(distinct))
        over_images = (100 * low, 100 * high)
    low, high = hull(over_images, mean_interval(run_accuracy.to_numpy(), bounds=(0.0, 100.0)))
    majority = 100 * majority_rate(distinct.label.to_numpy())
    known = math.isfinite(low) and math.isfinite(majority)
    return {
        "n_images": len(distinct),
        "accuracy_low": low,
        "accuracy_high": high,
        "majority_rate": majority,
        "learned": learned(low, majority) if known else None,
    }


def auc_evidence(run_auc: pd.Series, images: pd.DataFrame) -> dict[str, float]:
    """``auc_low``/``auc_high`` of a row from the runs that have an AUC (two-class datasets)."""
    run_auc = pd.to_numeric(run_auc, errors="coerce").dropna()
    groups = []
    scored = images[images.run.isin(run_auc.index) & images.score.notna()]
    by_test_set: dict[tuple[str, ...], list[pd.DataFrame]] = {}
    for _, part in scored.groupby("run", sort=False):
        part = part.sort_values("image_id")
        by_test_set.setdefault(tuple(part.image_id), []).append(part)
    for parts in by_test_set.values():
        labels = parts[0].label.to_numpy()
        if len(set(labels)) == 2:
            groups.append((labels, np.stack([part.score.to_numpy(dtype=float) for part in parts])))
    over_images = auc_interval(groups) if groups else NO_INTERVAL
    low, high = hull(over_images, mean_interval(run_auc.to_numpy(), bounds=(0.0, 1.0)))
    return {"auc_low": low, "auc_high": high}


def paired_comparison(
    row_accuracy: pd.Series, reference_accuracy: pd.Series, row_images: pd.DataFrame,
    reference_images: pd.DataFrame, where: str,
) -> dict[str, Any]:
    """The row's accuracy minus the reference's on their common runs (points), its interval, the
    sign test's p and the counts of images where the row was right and the reference wrong
    (``images_better``) or the reverse (``images_worse``). ``where`` names the two for an error message."""
    runs = [run for run in row_accuracy.index if run in reference_accuracy.index]
    out: dict[str, Any] = {
        "paired_runs": len(runs), "diff_accuracy": math.nan, "diff_low": math.nan, "diff_high": math.nan,
        "diff_p": math.nan, "images_better": math.nan, "images_worse": math.nan,
    }
    if not runs:
        return out
    run_differences = row_accuracy[runs].to_numpy(dtype=float) - reference_accuracy[runs].to_numpy(dtype=float)
    out["diff_accuracy"] = float(run_differences.mean())
    over_images = NO_INTERVAL
    row_images = row_images[row_images.run.isin(runs)]
    reference_images = reference_images[reference_images.run.isin(runs)]
    if len(row_images) and len(reference_images):
        for run in runs:
            ours = set(row_images.image_id[row_images.run == run])
            theirs = set(reference_images.image_id[reference_images.run == run])
            if ours != theirs:
                raise UserError(
                    f"{where}, run {run}: the two methods were tested on different images "
                    f"({len(ours ^ theirs)} differ), so they cannot be compared image by image; "
                    "rerun both on the same split"
                )
        pairs = row_images.merge(reference_images, on=["run", "image_id"], suffixes=("", "_reference"))
        differences = 100 * (pairs.correct - pairs.correct_reference)
        per_image = differences.groupby(pairs.image_id).mean().to_numpy() / 100  # in [-1, 1]
        better, worse = per_image.clip(min=0).sum(), -per_image.clip(max=0).sum()
        low, high = paired_difference_interval(better, worse, len(per_image))
        over_images = (100 * low, 100 * high)
        out["images_better"], out["images_worse"], out["diff_p"] = sign_test(per_image)
    out["diff_low"], out["diff_high"] = hull(over_images, mean_interval(run_differences, bounds=(-100.0, 100.0)))
    return out
