"""Results tables from the per-run metrics: accuracy (and ROC AUC) mean +- std over runs, cost per image.

One code path for every table: Table 1 and 2 (a block per dataset, its methods the rows) and the
config's other tables (Table 3's trade-off, Table 4's ablation, ...) are each a list of
:class:`TableRow` -- a ``(dataset, method)`` with its block, label and the run settings the table
shows. The paper's reported numbers are joined from ``config/paper_<table>.csv`` (keyed by block
and method) into columns whose names start with ``paper_``; every other number comes from the
runs' ``metrics.json``. The AUC columns are filled for two-class datasets (their runs'
``metrics.json`` has an ``auc``) and empty otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from zoomin.atomic import atomic_path

IDENTITY = ["block", "dataset", "method", "label"]
NUMBERS = [
    "runs", "seeds", "epochs", "accuracy_mean", "accuracy_std", "auc_mean", "auc_std",
    "gflops", "memory_mb", "time_ms", "device",
]
METRICS = ("seed", "accuracy", "gflops", "peak_memory_mb", "time_ms", "device")

# How a run setting is headed in the Markdown table (the CSV keeps the setting's own name).
SETTING_HEADERS = {
    "n": "N",
    "entropy_lambda": "λ (entropy)",
    "contrastive_start": "Contrastive",
    "scale": "Scale",
    "s1": "s1",
    "s2": "s2",
}
# Paper columns shown in the Markdown table, in this order (others stay in the CSV only).
PAPER_HEADERS = {
    "paper_accuracy": "Accuracy, paper (%)",
    "paper_memory_mb": "Memory, paper (MB)",
    "paper_time_ms": "Time, paper (ms)",
}


@dataclass(frozen=True)
class RunMetrics:
    """Where one run's ``metrics.json`` is, and which (dataset, method, run) it belongs to."""

    dataset: str
    method: str
    run: str
    path: Path


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


def collect(runs: Sequence[RunMetrics]) -> pd.DataFrame:
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
    return pd.DataFrame(rows, columns=["dataset", "method", "run", "epochs", "auc", *METRICS])


def summarise(runs: pd.DataFrame, rows: Sequence[TableRow], paper: pd.DataFrame | None) -> pd.DataFrame:
    """Aggregate the runs of each row (in the order given) and join the paper's numbers."""
    settings = list(dict.fromkeys(name for row in rows for name in row.settings))
    out = []
    for row in rows:
        sel = runs[(runs.dataset == row.dataset) & (runs.method == row.method)]
        if sel.empty:
            continue
        out.append({
            "block": row.block,
            "dataset": row.dataset,
            "method": row.method,
            "label": row.label,
            **{name: row.settings.get(name) for name in settings},
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
    table = pd.DataFrame(out, columns=[*IDENTITY, *settings, *NUMBERS])
    if paper is not None:
        table = table.merge(paper, on=["block", "method"], how="left")
    return table


def _mean_std(name: str, values: pd.Series) -> dict[str, float]:
    """``<name>_mean`` and ``<name>_std`` over the runs that have a value (NaN when none has)."""
    known = pd.to_numeric(values, errors="coerce").dropna()
    if known.empty:
        return {f"{name}_mean": float("nan"), f"{name}_std": float("nan")}
    return {f"{name}_mean": known.mean(), f"{name}_std": known.std(ddof=1) if len(known) > 1 else 0.0}


def _mean_pm_std(mean: float, std: float, runs: int, spec: str) -> str:
    """``mean ± std``, or the value alone for one run (whose spread is unknown, not zero)."""
    return f"{mean:{spec}}" if runs == 1 else f"{mean:{spec}} ± {std:{spec}}"


def to_markdown(table: pd.DataFrame, title: str = "", settings: Sequence[str] = ()) -> str:
    """One section per block, accuracy as ``mean ± std``, settings and paper columns labelled."""
    lines = [f"# {title}", ""] if title else []
    lines += ["Accuracy (%) and ROC AUC (two-class datasets) are mean ± std over runs (a row of one run "
              "shows its value); cost is per image at inference, batch 1.",
              "Columns marked *paper* are the numbers reported in the paper, not measured here.", ""]
    for block, part in table.groupby("block", sort=False):
        view = pd.DataFrame({"Method": part.label})
        for name in settings:
            view[SETTING_HEADERS.get(name, name)] = part[name].map(lambda v, n=name: format_setting(n, v))
        view["Accuracy (%)"] = [
            _mean_pm_std(m, s, n, ".1f") for m, s, n in zip(part.accuracy_mean, part.accuracy_std, part.runs)
        ]
        if part.auc_mean.notna().any():
            view["AUC"] = [
                "–" if pd.isna(m) else _mean_pm_std(m, s, n, ".3f")
                for m, s, n in zip(part.auc_mean, part.auc_std, part.runs)
            ]
        view["GFLOPs"] = part.gflops.map(lambda v: f"{v:.3f}")
        view["Memory (MB)"] = part.memory_mb.map(lambda v: f"{v:.2f}")
        view["Time (ms)"] = part.time_ms.map(lambda v: f"{v:.2f}")
        view["Runs"] = part.runs
        view["Epochs"] = part.epochs.map(_or_dash)
        for name in settings:
            if f"paper_{name}" in part:
                view[f"{SETTING_HEADERS.get(name, name)}, paper"] = part[f"paper_{name}"].map(
                    lambda v, n=name: "–" if _missing(v) else format_setting(n, v)
                )
        for column, header in PAPER_HEADERS.items():
            if column in part:
                view[header] = part[column].map(_or_dash)
        if "paper_note" in part and part.paper_note.notna().any():
            view["Note on the paper's number"] = part.paper_note.fillna("")
        # The cells as formatted above (tabulate would turn "80.0" into 80), the numbers right-aligned.
        align = ("left",) + ("right",) * (len(view.columns) - 1)
        lines += [f"## {block}", "", view.to_markdown(index=False, disable_numparse=True, colalign=align), ""]
    return "\n".join(lines)


def format_setting(name: str, value: Any) -> str:
    """A run setting as the Markdown table shows it (the contrastive loss by when it starts)."""
    if name == "contrastive_start":
        if _missing(value) or value is False or value in ("off", "no"):
            return "off"
        if isinstance(value, str):
            return value
        return f"after epoch {int(value)}"
    if _missing(value):
        return "–"
    return f"{value:g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and pd.isna(value))


def _or_dash(value: float) -> str:
    return "–" if pd.isna(value) else f"{value:g}"


def make_table(
    runs: Sequence[RunMetrics],
    rows: Sequence[TableRow],
    paper_csv: str | Path | None,
    out_csv: Path,
    out_md: Path,
    title: str = "",
) -> pd.DataFrame:
    """Table CSV and Markdown from the runs' metrics; ``rows`` in the order the table lists them."""
    paper = pd.read_csv(paper_csv) if paper_csv else None
    table = summarise(collect(runs), rows, paper)
    settings = list(dict.fromkeys(name for row in rows for name in row.settings))
    with atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    with atomic_path(out_md) as tmp:
        tmp.write_text(to_markdown(table, title, settings))
    return table
