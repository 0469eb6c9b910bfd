"""Results tables from the per-run metrics and histories: every number with its evidence.

One code path for every table: Table 1 and 2 (a block per dataset, its methods the rows) and the
config's other tables (Table 3's trade-off, Table 4's ablation, ...) are each a list of
:class:`TableRow` -- a ``(dataset, method)`` with its block, label and the run settings the table
shows. Per row, from its runs' ``metrics.json`` (per-test-image results included) and
``history.csv``:

* accuracy (%), mean over runs with its 95 % interval, the majority-class rate of the test labels
  and whether the method learned (the interval above that rate); ROC AUC with its interval on
  two-class datasets (empty otherwise); a paired comparison with the block's reference method
  (``reference``, the workflow's ``figures.attention_method``: Zoom-In) on the same test images of
  the same runs -- the difference in points, its interval and p-value. How each is defined:
  :mod:`zoomin.report.evidence`, whose rules the Markdown table's footnote repeats;
* the training budget: epochs, optimiser ``steps`` and ``train_gmacs`` (estimated training
  compute, GMACs; :mod:`zoomin.training.loop`), the last epoch's cumulative values, mean over runs;
* per-image inference cost: ``gmacs`` (multiply-accumulates, the paper's unit: the metrics'
  ``gmacs``, or half their ``gflops`` where a run has none), peak memory (mean, and min and max
  over runs) and time.

The paper's reported numbers are joined from ``config/paper_<table>.csv`` (keyed by block and
method) into columns whose names start with ``paper_``; ``paper_gmacs`` is the paper's "GFLOPs"
column, which counts multiply-accumulates (its Eq. 10), so it compares with ``gmacs``.
The Markdown rendering is :mod:`zoomin.report.markdown`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from zoomin.atomic import atomic_path
from zoomin.errors import UserError
from zoomin.report.evidence import IMAGE_COLUMNS, accuracy_evidence, auc_evidence, paired_comparison, per_image

IDENTITY = ["block", "dataset", "method", "label"]
NUMBERS = [
    "runs", "seeds", "epochs", "steps", "train_gmacs",
    "n_images", "accuracy_mean", "accuracy_std", "accuracy_low", "accuracy_high", "majority_rate", "learned",
    "auc_mean", "auc_std", "auc_low", "auc_high",
    "reference", "paired_runs", "diff_accuracy", "diff_low", "diff_high", "diff_p", "images_better", "images_worse",
    "gmacs", "memory_mb", "memory_mb_min", "memory_mb_max", "cost_images", "time_ms", "device",
]
REQUIRED = ("seed", "accuracy", "peak_memory_mb", "time_ms", "device")  # in every metrics.json
RUN_COLUMNS = [
    "dataset", "method", "run", "seed", "epochs", "accuracy", "auc", "gmacs", "peak_memory_mb", "cost_images",
    "time_ms", "device", "steps", "train_gmacs",
]


@dataclass(frozen=True)
class RunMetrics:
    """Where one run's ``metrics.json`` (and ``history.csv``, if given) is, and which (dataset,
    method, run) it belongs to."""

    dataset: str
    method: str
    run: str
    path: Path
    history: Path | None = None


@dataclass(frozen=True)
class TableRow:
    """One row of a table: a method on a dataset, the block it is listed under, its label, and the
    values of the run settings the table shows (e.g. ``{"n": 10}``)."""

    dataset: str
    method: str
    block: str
    label: str
    settings: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TableRow:
        return cls(data["dataset"], data["method"], data["block"], data["label"], dict(data.get("settings") or {}))


def _gmacs(metrics: Mapping[str, Any], path: Path) -> float:
    """Inference GMACs per image: ``gmacs``, or half of ``gflops`` (2 FLOPs per multiply-accumulate)."""
    if metrics.get("gmacs") is not None:
        return float(metrics["gmacs"])
    if metrics.get("gflops") is not None:
        return float(metrics["gflops"]) / 2
    raise UserError(f"{path}: neither 'gmacs' nor 'gflops' (is it a metrics.json written by zoomin evaluate?)")


def _budget(history: Path | None) -> dict[str, float]:
    """The last epoch's cumulative ``steps`` and ``train_gmacs`` of a run (NaN where not recorded)."""
    if history is None:
        return {"steps": math.nan, "train_gmacs": math.nan}
    frame = pd.read_csv(history)
    last = frame.iloc[-1] if len(frame) else pd.Series(dtype=float)
    return {column: float(last.get(column, math.nan)) for column in ("steps", "train_gmacs")}


def collect(runs: Sequence[RunMetrics]) -> tuple[pd.DataFrame, dict[tuple[str, str], pd.DataFrame]]:
    """One row per run (its identity, numbers and budget), and per ``(dataset, method)`` the
    per-test-image results of its runs (:data:`zoomin.report.evidence.IMAGE_COLUMNS`)."""
    rows, images = [], {}
    for entry in runs:
        path = Path(entry.path)
        metrics = json.loads(path.read_text())
        missing = [key for key in REQUIRED if key not in metrics]
        if missing:
            raise UserError(f"{path}: no {', '.join(missing)} (is it a metrics.json written by zoomin evaluate?)")
        rows.append({
            "dataset": entry.dataset,
            "method": entry.method,
            "run": entry.run,
            "epochs": metrics.get("epochs"),
            "auc": metrics.get("auc"),
            "gmacs": _gmacs(metrics, path),
            "cost_images": metrics.get("cost_images"),
            **{key: metrics[key] for key in REQUIRED},
            **_budget(entry.history),
        })
        key = (entry.dataset, entry.method)
        images[key] = pd.concat([images.get(key), per_image(metrics, entry.run)], ignore_index=True)
    return pd.DataFrame(rows, columns=RUN_COLUMNS), images


def summarise(
    runs: pd.DataFrame,
    rows: Sequence[TableRow],
    paper: pd.DataFrame | None,
    images: Mapping[tuple[str, str], pd.DataFrame] | None = None,
    reference: str | None = None,
) -> pd.DataFrame:
    """Aggregate the runs of each row (in the order given) and join the paper's numbers."""
    images = images or {}
    no_images = pd.DataFrame(columns=IMAGE_COLUMNS)
    settings = list(dict.fromkeys(name for row in rows for name in row.settings))
    out = []
    for row in rows:
        sel = runs[(runs.dataset == row.dataset) & (runs.method == row.method)].set_index("run", drop=False)
        if sel.empty:
            continue
        own = images.get((row.dataset, row.method), no_images)
        entry = {
            "block": row.block,
            "dataset": row.dataset,
            "method": row.method,
            "label": row.label,
            **{name: row.settings.get(name) for name in settings},
            "runs": len(sel),
            "seeds": " ".join(str(s) for s in sel.seed),
            "epochs": sel.epochs.max(),
            "steps": sel.steps.mean(),
            "train_gmacs": sel.train_gmacs.mean(),
            "accuracy_mean": sel.accuracy.mean(),
            "accuracy_std": sel.accuracy.std(ddof=1) if len(sel) > 1 else 0.0,
            **accuracy_evidence(sel.accuracy, own),
            **_mean_std("auc", sel.auc),
            **auc_evidence(sel.auc, own),
            **_comparison(row, sel, runs, own, images, reference),
            "gmacs": sel.gmacs.mean(),
            "memory_mb": sel.peak_memory_mb.mean(),
            "memory_mb_min": sel.peak_memory_mb.min(),
            "memory_mb_max": sel.peak_memory_mb.max(),
            "cost_images": pd.to_numeric(sel.cost_images, errors="coerce").max(),
            "time_ms": sel.time_ms.median(),
            "device": ",".join(sorted(set(sel.device))),
        }
        out.append(entry)
    table = pd.DataFrame(out, columns=[*IDENTITY, *settings, *NUMBERS])
    if paper is not None:
        table = table.merge(paper, on=["block", "method"], how="left")
    return table


def _comparison(
    row: TableRow, sel: pd.DataFrame, runs: pd.DataFrame, own: pd.DataFrame,
    images: Mapping[tuple[str, str], pd.DataFrame], reference: str | None,
) -> dict[str, Any]:
    """The paired comparison of a row with its block's reference row (empty for the reference
    itself, and where the table has no reference row on the row's dataset)."""
    ref = runs[(runs.dataset == row.dataset) & (runs.method == reference)].set_index("run")
    if reference is None or row.method == reference or ref.empty:
        return {"reference": reference if reference is not None and not ref.empty else None}
    result = paired_comparison(
        sel.accuracy, ref.accuracy, own, images.get((row.dataset, reference), pd.DataFrame(columns=IMAGE_COLUMNS)),
        f"{row.dataset}: {row.method} against {reference}",
    )
    return {"reference": reference, **result}


def _mean_std(name: str, values: pd.Series) -> dict[str, float]:
    """``<name>_mean`` and ``<name>_std`` over the runs that have a value (NaN when none has)."""
    known = pd.to_numeric(values, errors="coerce").dropna()
    if known.empty:
        return {f"{name}_mean": float("nan"), f"{name}_std": float("nan")}
    return {f"{name}_mean": known.mean(), f"{name}_std": known.std(ddof=1) if len(known) > 1 else 0.0}


def make_table(
    runs: Sequence[RunMetrics],
    rows: Sequence[TableRow],
    paper_csv: str | Path | None,
    out_csv: Path,
    out_md: Path,
    title: str = "",
    reference: str | None = None,
    reference_label: str | None = None,
) -> pd.DataFrame:
    """Table CSV and Markdown from the runs' metrics; ``rows`` in the order the table lists them;
    each row compared with ``reference`` (a method; its label ``reference_label``) on its dataset."""
    from zoomin.report.markdown import to_markdown

    paper = pd.read_csv(paper_csv) if paper_csv else None
    per_run, images = collect(runs)
    table = summarise(per_run, rows, paper, images, reference)
    settings = list(dict.fromkeys(name for row in rows for name in row.settings))
    with atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    with atomic_path(out_md) as tmp:
        tmp.write_text(to_markdown(table, title, settings, reference_label or reference))
    return table
