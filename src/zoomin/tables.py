"""Tables 1 and 2 from the per-run metrics: accuracy (and ROC AUC) mean +- std over runs, cost per image.

The AUC columns are filled for two-class datasets (their runs' ``metrics.json`` has an ``auc``) and
empty otherwise.

The paper's reported numbers are joined from ``config/paper_<table>.csv`` into columns whose names
start with ``paper_``; every other number comes from the runs' ``metrics.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from zoomin.atomic import atomic_path

COLUMNS = [
    "block", "dataset", "method", "label", "runs", "seeds", "epochs",
    "accuracy_mean", "accuracy_std", "auc_mean", "auc_std", "gflops", "memory_mb", "time_ms", "device",
]
METRICS = ("seed", "accuracy", "gflops", "peak_memory_mb", "time_ms", "device")


@dataclass(frozen=True)
class RunMetrics:
    """Where one run's ``metrics.json`` is, and which (dataset, method, run) it belongs to."""

    dataset: str
    method: str
    run: str
    path: Path


def collect(runs: list[RunMetrics]) -> pd.DataFrame:
    """One row per run: its identity and the numbers of its metrics file."""
    rows = []
    for entry in runs:
        metrics = json.loads(Path(entry.path).read_text())
        rows.append({
            "dataset": entry.dataset,
            "method": entry.method,
            "run": entry.run,
            "epochs": metrics.get("epochs"),
            "auc": metrics.get("auc"),
            **{key: metrics[key] for key in METRICS},
        })
    return pd.DataFrame(rows)


def summarise(
    runs: pd.DataFrame, datasets: dict[str, Any], methods: dict[str, Any], paper: pd.DataFrame | None
) -> pd.DataFrame:
    """Aggregate runs per (dataset, method), in config order, and join the paper's numbers."""
    rows = []
    for dataset, ds in datasets.items():
        for method in ds["methods"]:
            sel = runs[(runs.dataset == dataset) & (runs.method == method)]
            if sel.empty:
                continue
            rows.append({
                "block": ds["block"],
                "dataset": dataset,
                "method": method,
                "label": methods[method]["label"],
                "runs": len(sel),
                "seeds": " ".join(str(s) for s in sel.seed),
                "epochs": sel.epochs.max(),
                "accuracy_mean": sel.accuracy.mean(),
                "accuracy_std": sel.accuracy.std(ddof=1) if len(sel) > 1 else 0.0,
                **_mean_std("auc", sel.auc),
                "gflops": sel.gflops.mean(),
                "memory_mb": sel.peak_memory_mb.mean(),
                "time_ms": sel.time_ms.median(),
                "device": ",".join(sorted(set(sel.device))),
            })
    table = pd.DataFrame(rows, columns=COLUMNS)
    if paper is not None:
        table = table.merge(paper, on=["block", "method"], how="left")
    return table


def _mean_std(name: str, values: pd.Series) -> dict[str, float]:
    """``<name>_mean`` and ``<name>_std`` over the runs that have a value (NaN when none has)."""
    known = pd.to_numeric(values, errors="coerce").dropna()
    if known.empty:
        return {f"{name}_mean": float("nan"), f"{name}_std": float("nan")}
    return {f"{name}_mean": known.mean(), f"{name}_std": known.std(ddof=1) if len(known) > 1 else 0.0}


def to_markdown(table: pd.DataFrame) -> str:
    """One section per block, accuracy as ``mean ± std``, paper columns labelled as such."""
    lines = ["Accuracy (%) and ROC AUC (two-class datasets) are mean ± std over runs; cost is per image "
             "at inference, batch 1.",
             "Columns marked *paper* are the numbers reported in the paper, not measured here.", ""]
    for block, part in table.groupby("block", sort=False):
        view = pd.DataFrame({
            "Method": part.label,
            "Accuracy (%)": [f"{m:.1f} ± {s:.1f}" for m, s in zip(part.accuracy_mean, part.accuracy_std)],
            "AUC": ["–" if pd.isna(m) else f"{m:.3f} ± {s:.3f}" for m, s in zip(part.auc_mean, part.auc_std)],
            "GFLOPs": part.gflops.map(lambda v: f"{v:.3f}"),
            "Memory (MB)": part.memory_mb.map(lambda v: f"{v:.2f}"),
            "Time (ms)": part.time_ms.map(lambda v: f"{v:.2f}"),
            "Runs": part.runs,
            "Epochs": part.epochs.map(_or_dash),
        })
        if "paper_accuracy" in part:
            view["Accuracy, paper (%)"] = part.paper_accuracy.map(_or_dash)
            view["Memory, paper (MB)"] = part.paper_memory_mb.map(_or_dash)
        lines += [f"## {block}", "", view.to_markdown(index=False), ""]
    return "\n".join(lines)


def _or_dash(value: float) -> str:
    return "–" if pd.isna(value) else f"{value:g}"


def make_table(
    runs: list[RunMetrics], datasets: dict[str, Any], methods: dict[str, Any],
    paper_csv: str | Path | None, out_csv: Path, out_md: Path,
) -> pd.DataFrame:
    """Table CSV and Markdown from the runs' metrics; ``datasets``/``methods`` as in the config."""
    paper = pd.read_csv(paper_csv) if paper_csv else None
    table = summarise(collect(runs), datasets, methods, paper)
    with atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    with atomic_path(out_md) as tmp:
        tmp.write_text(to_markdown(table))
    return table
