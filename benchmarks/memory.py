"""Peak inference memory, FLOPs and time per image vs image side: Zoom-In, ATS and a full-res CNN.

    python benchmarks/memory.py [--quick] [--out CSV] [--device cpu|cuda]

The measurement is :func:`zoomin.measure.scaling.memory_vs_side` (its docstring lists the methods
and their settings), the function the workflow's ``memory_scaling`` rule calls for Figure 4.
Writes the CSV (columns ``method,image_side,peak_memory_mb,gflops,time_ms`` then the parts of the
peak), a log-log PNG plot of memory vs side and a Markdown summary with the target checks next to it.
A (method, side) whose predicted peak does not fit in the memory available is skipped and listed.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path

import pandas as pd
import torch

from zoomin.measure.scaling import memory_vs_side

LOG = logging.getLogger("benchmarks.memory")

FULL_SIDES = (500, 1000, 2000, 4000, 8000)
QUICK_SIDES = (500, 1000)


def check_targets(table: pd.DataFrame) -> list[tuple[str, bool | None, str]]:
    """The memory targets: (target, met? or None when not measurable, evidence)."""
    memory = table.pivot(index="image_side", columns="method", values="peak_memory_mb")
    checks: list[tuple[str, bool | None, str]] = []

    for other in ("ats_published", "cnn"):
        both = memory[["zoomin", other]].dropna() if other in memory else pd.DataFrame()
        met = bool((both["zoomin"] < both[other]).all()) if len(both) else None
        ratios = ", ".join(f"{s}: {both.loc[s, other] / both.loc[s, 'zoomin']:.1f}x" for s in both.index)
        checks.append((f"Zoom-In below {other} at every side", met, f"{other}/zoomin = {ratios}"))

    if "ats_lazy" in memory:
        both = memory[["zoomin", "ats_lazy"]].dropna()
        below = both["zoomin"] < both["ats_lazy"]
        crossings = [
            f"between {a} and {b} (Zoom-In {'below' if below[b] else 'above'} ATS-lazy from {b})"
            for a, b in zip(both.index[:-1], both.index[1:])
            if below[a] != below[b]
        ]
        sides_below = [int(s) for s in both.index[below]]
        evidence = (
            "curves cross " + "; ".join(crossings) if crossings else "no crossing in the measured range"
        ) + f"; Zoom-In below ATS-lazy at sides {sides_below}"
        checks.append(("Zoom-In vs ATS-lazy: where the curves cross (report only)", None, evidence))

    zoomin = table[table["method"] == "zoomin"]
    if len(zoomin):
        full_mb = zoomin["image_side"] ** 2 * 3 * 4 / 2**20
        fraction = zoomin["largest_allocation_mb"] / full_mb
        checks.append(
            (
                "Zoom-In's largest tensor < 1/2 of the full-resolution float image",
                bool((fraction < 0.5).all()),
                ", ".join(f"{s}: 1/{1 / f:.0f}" for s, f in zip(zoomin["image_side"], fraction)),
            )
        )

    for other, factor in (("ats_published", 6), ("cnn", 90)):
        if 4000 in memory.index and other in memory and not math.isnan(memory.loc[4000, other]):
            ratio = memory.loc[4000, other] / memory.loc[4000, "zoomin"]
            checks.append(
                (f"at 4000: Zoom-In <= 1/{factor} of {other}", bool(ratio >= factor), f"ratio {ratio:.1f}x")
            )
        else:
            checks.append((f"at 4000: Zoom-In <= 1/{factor} of {other}", None, "not measured at 4000"))

    for other in ("ats_published", "cnn"):
        ratios = (memory[other] / memory["zoomin"]).dropna() if other in memory else pd.Series(dtype=float)
        widens = bool(ratios.is_monotonic_increasing and len(ratios) > 1) if len(ratios) else None
        checks.append(
            (
                f"gap to {other} widens with side",
                widens,
                " -> ".join(f"{r:.1f}x" for r in ratios),
            )
        )
    return checks


def plot(table: pd.DataFrame, path: Path) -> None:
    """Log-log plot of peak inference memory vs image side, one line per method."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for method, rows in table.groupby("method", sort=False):
        ax.plot(rows["image_side"], rows["peak_memory_mb"], marker="o", label=method)
    ax.set_xscale("log")
    ax.set_yscale("log")
    sides = sorted(table["image_side"].unique())
    ax.set_xticks(sides, [str(s) for s in sides])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("image side (pixels)")
    ax.set_ylabel("peak inference memory (MB)")
    device = table["device"].iloc[0] if len(table) else "?"
    ax.set_title(f"Peak memory per image, batch 1 ({device})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown_summary(
    table: pd.DataFrame, checks: list[tuple[str, bool | None, str]], skipped: list[str], command: str
) -> str:
    """The table and target checks as Markdown (what benchmarks/README.md records)."""
    formats = {
        "peak_memory_mb": "{:,.2f}",
        "gflops": "{:.3f}",
        "time_ms": "{:,.0f}",
        "largest_allocation_mb": "{:,.2f}",
        "input_mb": "{:,.1f}",
    }
    shown = table[["method", "image_side", *formats, "repeats"]].copy()
    for column, spec in formats.items():
        shown[column] = shown[column].map(spec.format)
    lines = [f"Command: `{command}`", "", shown.to_markdown(index=False, stralign="right"), ""]
    lines += ["| target | met | evidence |", "|---|---|---|"]
    for target, met, evidence in checks:
        verdict = "n/a" if met is None else ("yes" if met else "**no**")
        lines.append(f"| {target} | {verdict} | {evidence} |")
    if skipped:
        lines += ["", "Skipped: " + "; ".join(skipped)]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help=f"sides {QUICK_SIDES}, 2 repeats (< 1 min on 2 CPU cores)"
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/memory.csv"), help="CSV to write")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda if available")
    parser.add_argument("--sides", type=int, nargs="+", default=None, help=f"default {FULL_SIDES}")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats (default 5; 2 with --quick)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument(
        "--slow-seconds", type=float, default=None,
        help="a pass predicted slower than this is timed once without warm-up (default 5; 1 with --quick)",
    )
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        print("memory.py: error: --device cuda but CUDA is not available", file=sys.stderr)
        return 1
    sides = tuple(args.sides or (QUICK_SIDES if args.quick else FULL_SIDES))
    repeats = args.repeats or (2 if args.quick else 5)
    slow_seconds = args.slow_seconds or (1.0 if args.quick else 5.0)
    table, skipped = memory_vs_side(sides, device, args.seed, repeats, args.warmup, slow_seconds)
    checks = check_targets(table)
    command = " ".join(["python", "benchmarks/memory.py", *(sys.argv[1:] if argv is None else argv)])
    summary = markdown_summary(table, checks, skipped, command)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    plot(table, args.out.with_suffix(".png"))
    args.out.with_suffix(".md").write_text(summary)
    print(summary)
    print(f"wrote {args.out}, {args.out.with_suffix('.png')}, {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
