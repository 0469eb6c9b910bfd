"""Peak inference memory, FLOPs and time per image vs image side: Zoom-In, ATS and a full-res CNN.

    python benchmarks/memory.py [--quick] [--out CSV] [--device cpu|cuda]

Methods, at the colon-cancer settings of docs/method.md §11.2 (randomly initialised models; the
cost of inference does not depend on the weights, only the sampled positions do, and those are
fixed by ``--seed``):

* ``zoomin``        -- Zoom-In (T 250, P 27, s1 0.1, s2 0.2, N 10, LeNet features), lazy image;
* ``ats_published`` -- ATS (s 0.2, P 27, N 10) reading a ``DeviceTensorImage``: the whole image
  is a float tensor on the device and view and patches are cut from it, as in the published code;
* ``ats_lazy``      -- the same ATS reading an ``InMemoryImage`` (view by Pillow, patches cropped);
* ``cnn``           -- the 8-layer, 32-channel ResNet on the full-resolution image (scale 1.0).

The image is synthetic uniform noise (NumPy ``uint8``) of each side. Each cell comes from
:func:`zoomin.measure.measure_inference` (batch 1; see that module for what the memory counts).
Writes the CSV (columns ``method,image_side,peak_memory_mb,gflops,time_ms`` then the parts of the
peak), a log-log PNG plot of memory vs side and a Markdown summary with the target checks next to it.
A (method, side) whose predicted peak does not fit in the memory available is skipped and listed.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from zoomin.image_access import DeviceTensorImage, ImageAccess, InMemoryImage
from zoomin.measure import measure_inference
from zoomin.models import build_model

LOG = logging.getLogger("benchmarks.memory")

METHODS = ("zoomin", "ats_published", "ats_lazy", "cnn")
FULL_SIDES = (500, 1000, 2000, 4000, 8000)
QUICK_SIDES = (500, 1000)
COLUMNS = [
    "method",
    "image_side",
    "peak_memory_mb",
    "gflops",
    "time_ms",
    "largest_allocation_mb",
    "parameters_mb",
    "input_mb",
    "forward_peak_mb",
    "repeats",
    "device",
    "memory_method",
]


def build_models(device: torch.device, seed: int) -> dict[str, torch.nn.Module]:
    """The three networks (both ATS rows share one network), randomly initialised from ``seed``."""
    torch.manual_seed(seed)
    zoomin = build_model("zoomin", num_classes=2)  # the registry's defaults are the colon settings
    ats = build_model("ats", num_classes=2)
    cnn = build_model("cnn", num_classes=2, scale=1.0)
    models = {"zoomin": zoomin, "ats_published": ats, "ats_lazy": ats, "cnn": cnn}
    return {name: model.to(device).eval() for name, model in models.items()}


def make_image(method: str, pixels: np.ndarray, device: torch.device) -> ImageAccess:
    """ATS as published holds the whole image on the device; every other method reads it lazily."""
    if method == "ats_published":
        return DeviceTensorImage(pixels, device)
    return InMemoryImage(pixels)


def available_bytes(device: torch.device) -> int:
    """Memory free for tensors on ``device`` now (``MemAvailable`` on CPU)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    with open("/proc/meminfo", encoding="ascii") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 2**62


def predicted(previous: dict[str, float] | None, side: int, key: str) -> float | None:
    """Extrapolate a cost quadratically in the side from the previous side's row (an upper bound
    for the sampling methods, about right for the CNN)."""
    if previous is None:
        return None
    return previous[key] * (side / previous["image_side"]) ** 2


def run_benchmark(
    sides: tuple[int, ...],
    device: torch.device,
    seed: int,
    repeats: int,
    warmup: int,
    slow_seconds: float,
    headroom: float = 0.6,
) -> tuple[pd.DataFrame, list[str]]:
    """Measure every method at every side; returns the rows and the (method, side) pairs skipped."""
    models = build_models(device, seed)
    rows: list[dict] = []
    skipped: list[str] = []
    previous: dict[str, dict[str, float]] = {}
    for side in sides:
        pixels = np.random.default_rng(seed + side).integers(0, 256, (side, side, 3), dtype=np.uint8)
        for method in METHODS:
            expected_mb = predicted(previous.get(method), side, "peak_memory_mb")
            # the lazy methods also need the uint8 image in host memory, already allocated
            if expected_mb is not None and expected_mb * 2**20 > headroom * available_bytes(device):
                skipped.append(f"{method} at {side}: predicted {expected_mb:,.0f} MB does not fit")
                LOG.warning("skip %s", skipped[-1])
                continue
            expected_ms = predicted(previous.get(method), side, "time_ms")
            slow = expected_ms is not None and expected_ms > 1000 * slow_seconds
            n_repeats, n_warmup = (1, 0) if slow else (repeats, warmup)
            image = make_image(method, pixels, device)
            start = time.perf_counter()
            result = measure_inference(
                models[method], image, device, seed=seed, repeats=n_repeats, warmup=n_warmup
            )
            del image
            row = {
                "method": method, "image_side": side, **result,
                "repeats": n_repeats, "device": str(device),
            }
            rows.append(row)
            previous[method] = row
            LOG.info(
                "%-13s side %5d: %9.2f MB  %8.3f GFLOPs  %9.1f ms  (%.1f s)",
                method, side, row["peak_memory_mb"], row["gflops"], row["time_ms"],
                time.perf_counter() - start,
            )
    return pd.DataFrame(rows, columns=COLUMNS), skipped


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
    table, skipped = run_benchmark(sides, device, args.seed, repeats, args.warmup, slow_seconds)
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
