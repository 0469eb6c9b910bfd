"""The paper's claims, judged from the tables' and figures' CSVs: ``results/claims.md`` and ``.csv``.

Each claim is checked by one or more *findings* (a comparison in one block), each with the effect
measured here, its 95 % interval (or range) and p-value where there is one, the paper's number
beside it, and a verdict: **reproduced**, **contradicted** or **inconclusive at this size**, or
**not run** when the config makes nothing the claim needs (e.g. no Table 4). The intervals and
p-values are those of the tables (:mod:`zoomin.report.evidence`).

Decision rules -- conservative: a claim is reproduced only when the interval says so, never on a
point estimate alone.

* **C1, accuracy** (Tables 1 and 2): Zoom-In (the tables' reference method) is at least as accurate
  as each baseline of its block (rows of other model types than ``zoomin``). Effect: Zoom-In's
  accuracy minus the baseline's, paired on the same test images (points). *Reproduced* when the
  interval lies above ``-MARGIN`` (a non-inferiority margin of :data:`MARGIN` points) **and** Zoom-In
  learned (its accuracy interval above the majority rate: two rows at chance show nothing);
  *contradicted* when the interval lies below 0 (the baseline is more accurate); otherwise
  inconclusive.
* **C2, memory** (Tables 1 and 2): Zoom-In needs less peak inference memory than ATS and the CNN.
  Effect: the other method's peak memory over Zoom-In's (a ratio), its range the extreme ratios over
  the runs (min over max, max over min). *Reproduced* when the whole range is at least
  :data:`MEMORY_SAVING` (the other needs at least 10 % more in every run); *contradicted* when the
  whole range lies below it; otherwise inconclusive. The paper's ratio is shown, not judged: the
  memory scales with the image, and the stand-ins' images are not the paper's.
* **C3, loss terms** (Table 4): the in-sample contrastive loss and the entropy term help. Effect:
  accuracy with the term minus without, paired (points), for every row of Table 4 that differs
  from its block's reference row in that term alone (contrastive on vs off; entropy weight > 0 vs
  0). *Reproduced* when the interval lies above 0, *contradicted* when below 0, else inconclusive
  (the paper's own effects are 0.7 to 1 point).
* **C4, attention** (Figure 7): the stage-1 attention correlates with the annotation. Effect:
  Spearman's rho over every tile of the annotated test images (``spearman_<dataset>.csv``), its
  interval a bootstrap over whole images (:func:`~zoomin.report.stats.clustered_spearman_interval`;
  the tiles of one image are not independent, so the tile-level p-value is optimistic).
  *Reproduced* when the interval lies above 0; *contradicted* when it lies below
  :data:`NEGLIGIBLE_RHO` (at most a negligible correlation); otherwise inconclusive.
* **C5, NeedleMNIST** (appendix J): Zoom-In fails, "just slightly better than random guessing".
  Effect: its accuracy and interval against the majority rate. *Reproduced* when the whole interval
  lies below the majority rate plus :data:`SLIGHTLY_ABOVE_CHANCE` points; *contradicted* when the
  whole interval lies above it (it learned the task); otherwise inconclusive.

A claim's overall verdict: *contradicted* if any finding is, *reproduced* if every finding that
was run is, *not run* if none was, otherwise *inconclusive at this size*.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from zoomin.atomic import atomic_path

MARGIN = 5.0  # points: how much less accurate than a baseline still counts as "at least as accurate"
MEMORY_SAVING = 1.10  # the other method's peak memory over Zoom-In's that counts as "needs less"
NEGLIGIBLE_RHO = 0.1  # a Spearman correlation below this is no agreement
SLIGHTLY_ABOVE_CHANCE = 10.0  # points above the majority rate that are still "slightly better than random"

REPRODUCED, CONTRADICTED, INCONCLUSIVE, NOT_RUN = "reproduced", "contradicted", "inconclusive at this size", "not run"

CLAIMS = {
    "C1": "Zoom-In is at least as accurate as ATS and the other baselines of its block (Tables 1 and 2).",
    "C2": "Zoom-In needs less peak inference memory than ATS and the CNN (Tables 1 and 2).",
    "C3": "The in-sample contrastive loss and the entropy term improve accuracy (Table 4).",
    "C4": "Stage-1 attention correlates with the pixel annotation (Figure 7).",
    "C5": "On NeedleMNIST Zoom-In fails: just slightly better than random guessing (appendix J).",
}
TABLES_READ = {"C1": ("table1", "table2"), "C2": ("table1", "table2"), "C3": ("table4",), "C5": ("appendix_j",)}
MEMORY_RIVALS = ("ats", "cnn")  # model types whose memory C2 compares with Zoom-In's
FINDING_COLUMNS = [
    "claim", "block", "finding", "measured", "low", "high", "p_value", "paper", "unit", "verdict", "reason",
]


@dataclass(frozen=True)
class Finding:
    """One check of a claim in one block."""

    claim: str
    block: str
    finding: str
    measured: float = math.nan
    low: float = math.nan
    high: float = math.nan
    p_value: float = math.nan
    paper: float = math.nan
    unit: str = ""
    verdict: str = NOT_RUN
    reason: str = ""


def _value(row: Any, column: str) -> float:
    value = row.get(column, math.nan) if isinstance(row, Mapping) else getattr(row, column, math.nan)
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _yes(value: Any) -> bool:
    """A learned flag as read back from a CSV (True, "True"; empty is not yes)."""
    return value is True or str(value) == "True"


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else math.nan  # NaN compares False: NaN stays NaN


def _interval(low: float, high: float) -> str:
    return f"[{low:.3g}, {high:.3g}]"


def _not_run(claim: str, reason: str) -> list[Finding]:
    return [Finding(claim, "–", "–", verdict=NOT_RUN, reason=reason)]


Tables = Mapping[str, pd.DataFrame]  # table name -> its CSV read back


def accuracy_findings(tables: Tables, models: Mapping[str, str], reference: str | None) -> list[Finding]:
    """C1: Zoom-In minus each baseline of its block, paired, with the non-inferiority rule."""
    frames = [tables[name] for name in TABLES_READ["C1"] if name in tables]
    if not frames or reference is None:
        return _not_run("C1", "no Table 1 or 2" if not frames else "no reference method (figures.attention_method)")
    findings = []
    for table in frames:
        for block, part in table.groupby("block", sort=False):
            ours = part[part.method == reference]
            if ours.empty:
                findings.append(Finding("C1", block, "–", reason=f"{reference} is not in this block"))
                continue
            ours = ours.iloc[0]
            for row in part[part.method.map(lambda m: models.get(m) != "zoomin")].itertuples():
                findings.append(_accuracy_finding(block, ours, row))
    return findings


def _accuracy_finding(block: str, ours: pd.Series, row: Any) -> Finding:
    name = f"{ours.label} vs {row.label}"
    effect, low, high = -_value(row, "diff_accuracy"), -_value(row, "diff_high"), -_value(row, "diff_low")
    paper = _value(ours, "paper_accuracy") - _value(row, "paper_accuracy")
    base = Finding("C1", block, name, effect, low, high, _value(row, "diff_p"), paper, "points")
    if math.isnan(effect) or math.isnan(low):
        return replace(base, reason="no paired runs with per-image results")
    if high < 0:
        verdict, reason = CONTRADICTED, f"{row.label} is more accurate: the whole interval lies below 0"
    elif low > -MARGIN and _yes(ours.learned):
        verdict, reason = REPRODUCED, f"the interval lies above -{MARGIN:g} points and Zoom-In learned"
    elif not _yes(ours.learned):
        verdict, reason = INCONCLUSIVE, "Zoom-In did not learn here (its accuracy interval reaches the majority rate)"
    else:
        verdict, reason = INCONCLUSIVE, f"the interval {_interval(low, high)} reaches below -{MARGIN:g} points"
    return replace(base, verdict=verdict, reason=reason)


def memory_findings(tables: Tables, models: Mapping[str, str], reference: str | None) -> list[Finding]:
    """C2: the peak inference memory of ATS and the CNN over Zoom-In's, per block."""
    frames = [tables[name] for name in TABLES_READ["C2"] if name in tables]
    if not frames or reference is None:
        return _not_run("C2", "no Table 1 or 2" if not frames else "no reference method (figures.attention_method)")
    findings = []
    for table in frames:
        for block, part in table.groupby("block", sort=False):
            ours = part[part.method == reference]
            rivals = part[part.method.map(lambda m: models.get(m) in MEMORY_RIVALS)]
            if ours.empty or rivals.empty:
                continue
            ours = ours.iloc[0]
            for row in rivals.itertuples():
                findings.append(_memory_finding(block, ours, row))
    return findings or _not_run("C2", "no block has Zoom-In beside ATS or the CNN")


def _memory_finding(block: str, ours: pd.Series, row: Any) -> Finding:
    ratio = _ratio(_value(row, "memory_mb"), _value(ours, "memory_mb"))
    low = _ratio(_value(row, "memory_mb_min"), _value(ours, "memory_mb_max"))
    high = _ratio(_value(row, "memory_mb_max"), _value(ours, "memory_mb_min"))
    paper = _ratio(_value(row, "paper_memory_mb"), _value(ours, "paper_memory_mb"))
    if math.isnan(low):
        return Finding("C2", block, f"{row.label} / {ours.label} peak memory", reason="no memory measured")
    if low >= MEMORY_SAVING:
        verdict, reason = REPRODUCED, f"{row.label} needs at least {MEMORY_SAVING:g}x Zoom-In's memory in every run"
    elif high < MEMORY_SAVING:
        verdict, reason = CONTRADICTED, f"{row.label} never needs {MEMORY_SAVING:g}x Zoom-In's memory"
    else:
        verdict, reason = INCONCLUSIVE, f"the ratio's range {_interval(low, high)} spans {MEMORY_SAVING:g}"
    if not math.isnan(paper):
        reason += f" (paper: {paper:.3g}x; the magnitude depends on the image size)"
    return Finding("C2", block, f"{row.label} / {ours.label} peak memory", ratio, low, high, math.nan, paper, "ratio",
                   verdict, reason)


def term_findings(tables: Tables, reference: str | None) -> list[Finding]:
    """C3: rows of Table 4 that differ from their block's reference row in one loss term alone."""
    if "table4" not in tables or reference is None:
        return _not_run("C3", "no Table 4 (tables.table4)" if "table4" not in tables else "no reference method")
    table = tables["table4"]
    settings = list(table.columns[table.columns.get_loc("label") + 1 : table.columns.get_loc("runs")])
    findings = []
    for block, part in table.groupby("block", sort=False):
        ours = part[part.method == reference]
        if ours.empty:
            continue
        ours = ours.iloc[0]
        for row in part[part.method != reference].itertuples():
            term = _term_switched(ours, row, settings)
            if term is not None:
                findings.append(_term_finding(block, ours, row, *term))
    return findings or _not_run("C3", "no row of Table 4 switches one loss term alone")


def _off(name: str, value: Any) -> bool:
    """Whether a setting leaves its loss term out (contrastive never started; entropy weight 0)."""
    if name == "contrastive_start":
        return value is None or (isinstance(value, float) and math.isnan(value)) or str(value) in ("off", "False")
    return float(value) == 0.0


def _term_switched(ours: pd.Series, row: Any, settings: Sequence[str]) -> tuple[str, int] | None:
    """``(term, sign)`` when ``row`` differs from ``ours`` in one loss term alone; ``sign`` +1 when
    the row has the term and the reference not, -1 for the reverse."""
    differ = [name for name in settings if str(getattr(row, name)) != str(ours[name])]
    if len(differ) != 1 or differ[0] not in ("contrastive_start", "entropy_lambda"):
        return None
    name = differ[0]
    row_off, ours_off = _off(name, getattr(row, name)), _off(name, ours[name])
    if row_off == ours_off:
        return None  # another weight or start of the same term: not whether the term helps
    term = "contrastive loss" if name == "contrastive_start" else "entropy term"
    return term, (1 if ours_off else -1)


def _term_finding(block: str, ours: pd.Series, row: Any, term: str, sign: int) -> Finding:
    with_term, without = (row.label, ours.label) if sign > 0 else (ours.label, row.label)
    effect = sign * _value(row, "diff_accuracy")
    low, high = sorted((sign * _value(row, "diff_low"), sign * _value(row, "diff_high")))
    paper = sign * (_value(row, "paper_accuracy") - _value(ours, "paper_accuracy"))
    name = f"{term}: {with_term} minus {without}"
    if math.isnan(low):
        verdict, reason = NOT_RUN, "no paired runs"
    elif low > 0:
        verdict, reason = REPRODUCED, "the whole interval lies above 0"
    elif high < 0:
        verdict, reason = CONTRADICTED, f"the {term} lowers accuracy: the whole interval lies below 0"
    else:
        verdict, reason = INCONCLUSIVE, f"the interval {_interval(low, high)} contains 0"
    return Finding("C3", block, name, effect, low, high, _value(row, "diff_p"), paper, "points", verdict, reason)


def attention_findings(
    spearman: Mapping[str, tuple[pd.DataFrame, pd.DataFrame]], blocks: Mapping[str, str]
) -> list[Finding]:
    """C4: Spearman's rho of stage-1 attention and annotation, with an interval over images."""
    from zoomin.report.stats import clustered_spearman_interval  # scipy: when judged, not when the DAG is planned

    if not spearman:
        return _not_run("C4", "no dataset in figures.spearman")
    findings = []
    for dataset, (summary, tiles) in spearman.items():
        everything = summary[summary.cells == "all"].iloc[0]
        rho = float(everything.spearman_rho)
        low, high = clustered_spearman_interval(
            tiles.attention, tiles.coverage, tiles.run.astype(str) + "/" + tiles.image_id.astype(str)
        )
        if math.isnan(low):
            verdict, reason = INCONCLUSIVE, "too few annotated images, or constant attention: no interval"
        elif low > 0:
            verdict, reason = REPRODUCED, "the whole interval (over images) lies above 0"
        elif high < NEGLIGIBLE_RHO:
            verdict, reason = CONTRADICTED, f"the whole interval lies below {NEGLIGIBLE_RHO:g}"
        else:
            verdict, reason = INCONCLUSIVE, f"the interval {_interval(low, high)} contains 0"
        reason += f"; {int(everything.tiles)} tiles of {int(everything.images)} images"
        findings.append(Finding("C4", blocks.get(dataset, dataset), f"{everything.method}: rho over all tiles", rho,
                                low, high, float(everything.p_value), math.nan, "rho", verdict, reason))
    return findings


def needle_findings(tables: Tables, reference: str | None) -> list[Finding]:
    """C5: the appendix J table's Zoom-In accuracy against the majority rate."""
    if "appendix_j" not in tables:
        return _not_run("C5", "no appendix J table (tables.appendix_j)")
    table = tables["appendix_j"]
    rows = table[table.method == reference] if reference in set(table.method) else table.iloc[:1]
    findings = []
    for row in rows.itertuples():
        low, high, chance = _value(row, "accuracy_low"), _value(row, "accuracy_high"), _value(row, "majority_rate")
        bar = chance + SLIGHTLY_ABOVE_CHANCE
        if math.isnan(low) or math.isnan(chance):
            verdict, reason = NOT_RUN, "no accuracy interval or no test labels"
        elif high < bar:
            verdict = REPRODUCED
            reason = f"the whole interval lies below {bar:.1f} (majority rate + {SLIGHTLY_ABOVE_CHANCE:g})"
        elif low > bar:
            verdict, reason = CONTRADICTED, f"it learned: the whole interval lies above {bar:.1f}"
        else:
            verdict, reason = INCONCLUSIVE, f"the interval {_interval(low, high)} contains {bar:.1f}"
        findings.append(Finding("C5", row.block, f"{row.label} accuracy (majority rate {chance:.1f} %)",
                                _value(row, "accuracy_mean"), low, high, math.nan, _value(row, "paper_accuracy"),
                                "%", verdict, reason))
    return findings


def overall(verdicts: Sequence[str]) -> str:
    """A claim's verdict from its findings' (module docstring)."""
    run = [v for v in verdicts if v != NOT_RUN]
    if not run:
        return NOT_RUN
    if CONTRADICTED in run:
        return CONTRADICTED
    return REPRODUCED if all(v == REPRODUCED for v in run) else INCONCLUSIVE


def judge(
    tables: Tables,
    spearman: Mapping[str, tuple[pd.DataFrame, pd.DataFrame]],
    models: Mapping[str, str],
    reference: str | None,
    blocks: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Every finding of every claim, one row each (:data:`FINDING_COLUMNS`)."""
    findings = (
        accuracy_findings(tables, models, reference)
        + memory_findings(tables, models, reference)
        + term_findings(tables, reference)
        + attention_findings(spearman, blocks or {})
        + needle_findings(tables, reference)
    )
    return pd.DataFrame([asdict(f) for f in findings], columns=FINDING_COLUMNS)


def write_claims(
    table_csvs: Mapping[str, str | Path],
    spearman_csvs: Mapping[str, tuple[str | Path, str | Path]],
    models: Mapping[str, str],
    reference: str | None,
    blocks: Mapping[str, str],
    out_md: Path,
    out_csv: Path,
) -> pd.DataFrame:
    """Read the tables (name -> CSV) and Figure 7's CSVs (dataset -> (summary, tiles)); write the claims."""
    tables = {name: pd.read_csv(path) for name, path in table_csvs.items()}
    spearman = {d: (pd.read_csv(summary), pd.read_csv(tiles)) for d, (summary, tiles) in spearman_csvs.items()}
    findings = judge(tables, spearman, models, reference, blocks)
    with atomic_path(out_csv) as tmp:
        findings.to_csv(tmp, index=False, float_format="%.6g")
    with atomic_path(out_md) as tmp:
        tmp.write_text(claims_markdown(findings))
    return findings


def claims_markdown(findings: pd.DataFrame) -> str:
    """The claims as Markdown: an overview (one line per claim), then each claim's findings."""
    lines = [
        "# The paper's claims, checked against this workflow's runs",
        "",
        "Each claim is checked by findings (one comparison in one block): the effect measured here, its 95 % "
        "interval (for memory the range over runs), the p-value where there is one, the paper's number, and a "
        "verdict by the rule under the claim (docs/evidence.md). *Inconclusive at this size* means the "
        "intervals are too wide to decide, not that the claim is false.",
        "",
        "| Claim | The paper says | Verdict | Findings |",
        "|:--|:--|:--|:--|",
    ]
    for claim, statement in CLAIMS.items():
        part = findings[findings.claim == claim]
        counts = part.verdict.value_counts()
        tally = ", ".join(f"{counts[v]} {v}" for v in (REPRODUCED, CONTRADICTED, INCONCLUSIVE, NOT_RUN) if v in counts)
        lines.append(f"| {claim} | {statement} | **{overall(list(part.verdict))}** | {tally} |")
    for claim, statement in CLAIMS.items():
        part = findings[findings.claim == claim]
        lines += ["", f"## {claim}: {statement}", "", f"Rule: {RULES[claim]}", ""]
        view = pd.DataFrame({
            "Block": part.block,
            "Finding": part.finding,
            "Measured [95 % CI]": [_measured(row) for row in part.itertuples()],
            "p": part.p_value.map(lambda p: "–" if pd.isna(p) else ("<0.001" if p < 0.001 else f"{p:.2g}")),
            "Paper": [_number(v, u) for v, u in zip(part.paper, part.unit)],
            "Verdict": part.verdict,
            "Why": part.reason,
        })
        lines += [view.to_markdown(index=False, disable_numparse=True), ""]
    return "\n".join(lines)


RULES = {
    "C1": f"Zoom-In minus the baseline, paired on the same test images (points). Reproduced when the interval "
    f"lies above -{MARGIN:g} and Zoom-In learned; contradicted when it lies below 0.",
    "C2": f"the other's peak inference memory over Zoom-In's, range over runs. Reproduced when the whole range is "
    f"at least {MEMORY_SAVING:g}; contradicted when it lies below {MEMORY_SAVING:g}.",
    "C3": "accuracy with the term minus without, paired (points). Reproduced when the interval lies above 0; "
    "contradicted when below 0.",
    "C4": f"Spearman's rho, interval by a bootstrap over images. Reproduced when it lies above 0; contradicted "
    f"when below {NEGLIGIBLE_RHO:g}.",
    "C5": f"accuracy against the majority rate. Reproduced when the interval lies below the majority rate + "
    f"{SLIGHTLY_ABOVE_CHANCE:g} points; contradicted when above it.",
}


def _number(value: float, unit: str) -> str:
    if pd.isna(value):
        return "–"
    value = value + 0.0  # -0.0 (a negated zero difference) prints as 0.0
    return {"points": f"{value:+.1f}", "ratio": f"{value:.3g}x", "rho": f"{value:.3f}"}.get(unit, f"{value:.1f}")


def _measured(row: Any) -> str:
    if pd.isna(row.measured):
        return "–"
    value = _number(row.measured, row.unit)
    if pd.isna(row.low):
        return value
    return f"{value} [{_number(row.low, row.unit)}, {_number(row.high, row.unit)}]"
