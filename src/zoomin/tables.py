"""Tables 1 and 2 from the per-run metrics: accuracy mean +- std over runs, cost per image.

The paper's reported numbers are joined from ``config/paper_<table>.csv`` into columns whose names
start with ``paper_``; every other number comes from the runs' ``metrics.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

COLUMNS = [
    "block", "dataset", "method", "label", "runs", "seeds",
    "accuracy_mean", "accuracy_std", "gflops", "memory_mb", "time_ms", "device",
]


def collect(metrics_paths: list[str | Path]) -> pd.DataFrame:
    """One row per run, with dataset and method taken from ``results/<dataset>/<method>/<run>/``."""
    rows = []
    for path in map(Path, metrics_paths):
        metrics = json.loads(path.read_text())
        rows.append({
            "dataset": path.parts[-4],
            "method": path.parts[-3],
            "run": path.parts[-2],
            **{key: metrics[key] for key in ("seed", "accuracy", "gflops", "peak_memory_mb", "time_ms", "device")},
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
                "accuracy_mean": sel.accuracy.mean(),
                "accuracy_std": sel.accuracy.std(ddof=1) if len(sel) > 1 else 0.0,
                "gflops": sel.gflops.mean(),
                "memory_mb": sel.peak_memory_mb.mean(),
                "time_ms": sel.time_ms.median(),
                "device": ",".join(sorted(set(sel.device))),
            })
    table = pd.DataFrame(rows, columns=COLUMNS)
    if paper is not None:
        table = table.merge(paper, on=["block", "method"], how="left")
    return table


def to_markdown(table: pd.DataFrame) -> str:
    """One section per block, accuracy as ``mean ± std``, paper columns labelled as such."""
    lines = ["Accuracy (%) is mean ± std over runs; cost is per image at inference, batch 1.",
             "Columns marked *paper* are the numbers reported in the paper, not measured here.", ""]
    for block, part in table.groupby("block", sort=False):
        view = pd.DataFrame({
            "Method": part.label,
            "Accuracy (%)": [f"{m:.1f} ± {s:.1f}" for m, s in zip(part.accuracy_mean, part.accuracy_std)],
            "GFLOPs": part.gflops.map(lambda v: f"{v:.3f}"),
            "Memory (MB)": part.memory_mb.map(lambda v: f"{v:.2f}"),
            "Time (ms)": part.time_ms.map(lambda v: f"{v:.2f}"),
            "Runs": part.runs,
        })
        if "paper_accuracy" in part:
            view["Accuracy, paper (%)"] = part.paper_accuracy.map(_or_dash)
            view["Memory, paper (MB)"] = part.paper_memory_mb.map(_or_dash)
        lines += [f"## {block}", "", view.to_markdown(index=False), ""]
    return "\n".join(lines)


def _or_dash(value: float) -> str:
    return "–" if pd.isna(value) else f"{value:g}"


def make_table(
    metrics_paths: list[str | Path], datasets: dict[str, Any], methods: dict[str, Any],
    paper_csv: str | Path | None, out_csv: Path, out_md: Path,
) -> pd.DataFrame:
    from zoomin.atomic import atomic_path

    paper = pd.read_csv(paper_csv) if paper_csv else None
    table = summarise(collect(metrics_paths), datasets, methods, paper)
    with atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    with atomic_path(out_md) as tmp:
        tmp.write_text(to_markdown(table))
    return table
