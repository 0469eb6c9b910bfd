"""The numbers behind Figures 4, 5 and the Pareto sweep, from the runs' files (no torch).

* :func:`run_accuracies` -- one row per run: accuracy, peak inference memory, GMACs (the paper's
  unit; half the ``gflops`` of metrics without ``gmacs``), time (``metrics.json``).
* :func:`pareto_points` -- per method: accuracy mean and std over runs against peak inference
  memory, and whether the method is on its model type's front (the most accurate of that type
  within its memory budget).
* :func:`training_history` -- the runs' ``history.csv`` rows with their method, for the tiles and
  input memory per image per epoch (Figure 4, left);
* :func:`budget_curves` -- from those, accuracy against cumulative training compute.

The figures themselves are drawn by :mod:`zoomin.report.draw`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from zoomin.atomic import atomic_path

RUN_COLUMNS = ["dataset", "method", "label", "model", "run", "accuracy", "memory_mb", "gmacs", "time_ms"]
PARETO_COLUMNS = [
    "dataset", "method", "label", "model", "settings", "runs",
    "accuracy_mean", "accuracy_std", "memory_mb", "gmacs", "time_ms", "on_front",
]


def run_accuracies(
    runs: Sequence[tuple[str, str, str]], metrics: Sequence[str | Path], methods: Mapping[str, Mapping[str, Any]]
) -> pd.DataFrame:
    """One row per run (``(dataset, method, run)`` with its ``metrics.json``); ``methods`` maps a
    method to its ``label`` and ``model`` type."""
    rows = []
    for (dataset, method, run), path in zip(runs, metrics):
        data = json.loads(Path(path).read_text())
        rows.append({
            "dataset": dataset,
            "method": method,
            "label": methods[method]["label"],
            "model": methods[method]["model"],
            "run": run,
            "accuracy": data["accuracy"],
            "memory_mb": data["peak_memory_mb"],
            "gmacs": data["gmacs"] if data.get("gmacs") is not None else data["gflops"] / 2,  # 2 FLOPs a MAC
            "time_ms": data["time_ms"],
        })
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


CONFIGURATION_PARAMS = ("s1", "s2", "tile", "scale", "n")  # what a configuration of the sweep is told apart by


def configuration_label(params: Mapping[str, Any]) -> str:
    """``s1=0.1 s2=0.2 tile=250 n=10``: the model parameters that set a configuration's memory. A
    K-stage model (``regions``, ``scales``) shows its scales as ``s1 .. sK`` and its region sides;
    N from the attention (``n_rule: perplexity``) shows as ``n=auto(c=3, 2-50)``."""
    values = dict(params)
    if "scales" in values:
        values.update({f"s{k}": scale for k, scale in enumerate(values.pop("scales"), start=1)})
        regions = values.pop("regions")
        label = " ".join(f"s{k}={values[f's{k}']:g}" for k in range(1, len(regions) + 2))
        label += f" regions={'/'.join(str(side) for side in regions)}"
    else:
        label = " ".join(f"{key}={values[key]:g}" for key in CONFIGURATION_PARAMS[:-1] if key in values)
    if values.get("n_rule") == "perplexity":
        return f"{label} n=auto(c={values['n_per_perplexity']:g}, {values['n_min']}-{values['n_max']})".strip()
    return f"{label} n={values['n']:g}".strip() if "n" in values else label


def pareto_points(runs: pd.DataFrame, params: Mapping[str, Mapping[str, Any]] | None = None) -> pd.DataFrame:
    """Per method (in the order first seen): accuracy mean/std over its runs, mean peak memory, its
    configuration (:func:`configuration_label` of its model ``params``) and ``on_front``: no method
    of the same model type needs at most as much memory and is more accurate (so each model type's
    front is its best accuracy at each memory budget)."""
    settings = {method: configuration_label(values) for method, values in (params or {}).items()}
    rows = []
    for method, part in runs.groupby("method", sort=False):
        rows.append({
            "dataset": part.dataset.iloc[0],
            "method": method,
            "label": part.label.iloc[0],
            "model": part.model.iloc[0],
            "settings": settings.get(method, ""),
            "runs": len(part),
            "accuracy_mean": part.accuracy.mean(),
            "accuracy_std": part.accuracy.std(ddof=1) if len(part) > 1 else 0.0,
            "memory_mb": part.memory_mb.mean(),
            "gmacs": part.gmacs.mean(),
            "time_ms": part.time_ms.median(),
        })
    points = pd.DataFrame(rows, columns=PARETO_COLUMNS[:-1])
    points["on_front"] = [
        not (
            (points.model == row.model)
            & (points.memory_mb <= row.memory_mb)
            & (points.accuracy_mean > row.accuracy_mean)
        ).any()
        for row in points.itertuples()
    ]
    return points


def front_steps(points: pd.DataFrame, model: str) -> pd.DataFrame:
    """The best accuracy of ``model`` reachable within each memory budget: its front as steps."""
    front = points[(points.model == model) & points.on_front].sort_values("memory_mb")
    return front[["memory_mb", "accuracy_mean"]].reset_index(drop=True)


def training_history(runs: Sequence[tuple[str, str, str]], histories: Sequence[str | Path],
                     methods: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """The histories of ``runs`` in one frame, with ``method``, ``label``, ``model`` and ``run``."""
    frames = []
    for (_, method, run), path in zip(runs, histories):
        frame = pd.read_csv(path)
        frame.insert(0, "run", run)
        frame.insert(0, "model", methods[method]["model"])
        frame.insert(0, "label", methods[method]["label"])
        frame.insert(0, "method", method)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def budget_curves(history: pd.DataFrame) -> pd.DataFrame:
    """Accuracy (%) per epoch against cumulative training compute, from :func:`training_history`:
    one row per (method, run, epoch, set) where both are known, ``set`` "validation" or "training".
    One-epoch runs have no validation accuracy, histories from before ``train_gmacs`` no compute:
    they have no rows."""
    columns = ["method", "label", "run", "epoch", "train_gmacs", "set", "accuracy"]
    if "train_gmacs" not in history or history.empty:
        return pd.DataFrame(columns=columns)
    parts = []
    for name, column in (("validation", "val_accuracy"), ("training", "train_accuracy")):
        part = history[columns[:5]].assign(set=name, accuracy=100 * history[column])
        parts.append(part[part.train_gmacs.notna() & part.accuracy.notna()])
    return pd.concat(parts, ignore_index=True)[columns]


def write_csv(frame: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")
