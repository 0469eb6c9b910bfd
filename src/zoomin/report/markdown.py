"""A results table as Markdown: one section per block, the evidence readable at a glance.

Accuracy as ``80.8 [72.1, 88.0]`` (mean over runs and 95 % interval), a ✓/– learned column
beside the majority-class rate, the paired comparison with the reference as ``+3.1 (p=0.42)``; every
bound, count and p-value is in the CSV (:mod:`zoomin.report.tables`). The footnote above the
tables says how each number is defined (the rules of :mod:`zoomin.report.evidence`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

FEW_RUNS = 3  # rows with fewer runs say so in their Runs column

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
    "paper_gmacs": "GMACs, paper",
    "paper_memory_mb": "Memory, paper (MB)",
    "paper_time_ms": "Time, paper (ms)",
}


def footnote(reference: str | None) -> list[str]:
    """What every column means: the rules of :mod:`zoomin.report.evidence`, in words."""
    lines = [
        "Accuracy (%): mean over the row's runs [95 % interval]. The interval is the hull of the Wilson "
        "interval over the row's distinct test images (an image that several seed replicates tested counts "
        "once, its correctness averaged over them) and, with 2 or more runs, the t-interval of the run "
        "accuracies. ROC AUC (two-class datasets) likewise, with a class-stratified bootstrap over the test "
        "images in place of Wilson.",
        "Majority (%): the share of the commonest class among the test images, what a constant prediction "
        "gets. Learned: ✓ when the accuracy interval lies wholly above it, – when not.",
    ]
    if reference:
        lines.append(
            f"vs {reference}: the row's accuracy minus {reference}'s (points), on the same test images of the "
            "same runs (paired by run id; mean over the paired runs); p from the exact sign test on the test "
            "images where the two differ (McNemar's exact test for one run, each image counted once over "
            "seed replicates). Its interval (same rule as accuracy, with Bonett and Price's interval for paired "
            "proportions over the images) is in the CSV (diff_low, diff_high)."
        )
    lines += [
        f"Runs: folds or seeds averaged; a row with fewer than {FEW_RUNS} says so. Epochs (steps): the "
        "training budget, optimiser steps in brackets; Train GMACs: estimated training compute "
        "(multiply-accumulates, from history.csv).",
        "Cost is per image at inference, batch 1. GMACs (paper's unit): multiply-accumulates; the paper's "
        "'GFLOPs' column counts MACs too (its Eq. 10; CSV column paper_gmacs). Metrics without a gmacs "
        "field show half their gflops (2 FLOPs per MAC).",
        "Columns marked *paper* are the numbers reported in the paper, not measured here.",
    ]
    return [f"{line}  " for line in lines] + [""]  # two spaces: a Markdown line break


def to_markdown(
    table: pd.DataFrame, title: str = "", settings: Sequence[str] = (), reference: str | None = None
) -> str:
    """One section per block: the evidence columns, settings, cost, budget and paper columns."""
    lines = [f"# {title}", ""] if title else []
    has_reference = reference is not None and "reference" in table and table.reference.notna().any()
    lines += footnote(reference if has_reference else None)
    for block, part in table.groupby("block", sort=False):
        view = pd.DataFrame({"Method": part.label})
        for name in settings:
            view[SETTING_HEADERS.get(name, name)] = part[name].map(lambda v, n=name: format_setting(n, v))
        view["Accuracy (%) [95 % CI]"] = [
            _with_interval(m, lo, hi, ".1f")
            for m, lo, hi in zip(part.accuracy_mean, part.accuracy_low, part.accuracy_high)
        ]
        view["Majority (%)"] = part.majority_rate.map(lambda v: "–" if pd.isna(v) else f"{v:.1f}")
        view["Learned"] = part.learned.map(_learned_mark)
        if part.auc_mean.notna().any():
            view["AUC [95 % CI]"] = [
                "–" if pd.isna(m) else _with_interval(m, lo, hi, ".3f")
                for m, lo, hi in zip(part.auc_mean, part.auc_low, part.auc_high)
            ]
        if has_reference:
            view[f"vs {reference} (points)"] = [_comparison(row) for row in part.itertuples()]
        view["GMACs (paper's unit)"] = part.gmacs.map(lambda v: f"{v:.3g}")
        view["Memory (MB)"] = part.memory_mb.map(lambda v: f"{v:.2f}")
        view["Time (ms)"] = part.time_ms.map(lambda v: f"{v:.2f}")
        view["Runs"] = part.runs.map(lambda n: f"{n}" if n >= FEW_RUNS else f"{n} (< {FEW_RUNS})")
        view["Epochs (steps)"] = [
            _or_dash(e) if pd.isna(s) else f"{_or_dash(e)} ({s:.0f})" for e, s in zip(part.epochs, part.steps)
        ]
        view["Train GMACs"] = part.train_gmacs.map(lambda v: "–" if pd.isna(v) else f"{v:.3g}")
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


def _with_interval(mean: float, low: float, high: float, spec: str) -> str:
    """``mean [low, high]``, or the mean alone where there is no interval."""
    if pd.isna(low) or pd.isna(high):
        return f"{mean:{spec}}"
    return f"{mean:{spec}} [{low:{spec}}, {high:{spec}}]"


def _learned_mark(value: Any) -> str:
    if _missing(value):
        return "?"  # no interval or no test labels to decide by
    return "✓" if bool(value) else "–"


def _comparison(row: Any) -> str:
    """``+3.1 (p=0.42)``; ``reference`` for the reference row; ``–`` where there is nothing to compare."""
    if row.method == row.reference:
        return "reference"
    if _missing(row.diff_accuracy):
        return "–"
    if _missing(row.diff_p):
        return f"{row.diff_accuracy:+.1f}"
    p = "p<0.001" if row.diff_p < 0.001 else f"p={row.diff_p:.2g}"
    return f"{row.diff_accuracy:+.1f} ({p})"


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
    return value is None or (isinstance(value, float) and math.isnan(value))


def _or_dash(value: float) -> str:
    return "–" if pd.isna(value) else f"{value:g}"
