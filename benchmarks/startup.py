"""Benchmark: what a workflow job spends before its real work (benchmarks/README.md, "Job start-up").

Not a test. Two commands:

``imports``
    Each adapter of ``workflow/scripts/`` starts a fresh Python process that runs Snakemake's
    preamble (``import pickle``, ``snakemake.logging``, ``snakemake.iocontainers``) and then the
    adapter's own top-level imports. This times exactly that, ``--repeats`` times per adapter in
    fresh interpreters (round-robin over the adapters, so that a change of the machine's load hits
    them alike), and prints the median seconds and the heavy packages loaded. ``--with-optimizer``
    adds, for ``train``, the construction of a ``torch.optim.Adam`` (which imports torch._dynamo).

``logs DIR``
    Summarises a finished workflow directory (a ``snakemake`` run of this package): per rule, from
    the job logs that :func:`zoomin.cli.workflow_support.run_script` writes, the seconds from the
    process's start to the rule's work (``start-up:``), for ``train`` also the seconds from there
    to its first epoch (reading the run's views, building the model and optimiser), and the
    seconds of work (``work:``); and, for rules with a ``benchmark:`` directive, Snakemake's own
    wall time of the job (``s`` of ``*.benchmark.tsv``).

Usage::

    python benchmarks/startup.py imports [--repeats 5] [--only train make_table ...] [--with-optimizer]
    python benchmarks/startup.py logs DIR [--json OUT]
"""

from __future__ import annotations

import argparse
import ast
import csv
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "workflow" / "scripts"
PREAMBLE = "import pickle\nfrom snakemake.logging import logger\nfrom snakemake.iocontainers import Snakemake\n"
HEAVY = ("torch", "torch._dynamo", "torchvision", "pandas", "scipy", "sklearn", "matplotlib", "seaborn", "h5py",
         "openslide", "PIL")


# -- imports --------------------------------------------------------------------------------------
def adapter_imports(name: str) -> str:
    """The top-level import statements of ``workflow/scripts/<name>.py``."""
    tree = ast.parse((SCRIPTS / f"{name}.py").read_text())
    return "\n".join(ast.unparse(node) for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom))


def _timed_process(code: str) -> tuple[float, list[str]]:
    """Wall seconds of ``python -c code`` from launch to exit, and the heavy packages it loaded."""
    code += "\nimport sys\nprint(' '.join(sys.modules))"
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    elapsed = time.perf_counter() - started
    loaded = set(out.stdout.split())
    return elapsed, [name for name in HEAVY if name in loaded]


def time_imports(names: list[str], repeats: int, with_optimizer: bool) -> list[dict]:
    codes = {}
    for name in names:
        code = PREAMBLE + adapter_imports(name)
        if with_optimizer and name == "train":
            code += "\nimport torch\ntorch.optim.Adam(torch.nn.Linear(2, 2).parameters())"
        codes[name] = code
    _timed_process("pass")  # warm the file cache of the interpreter itself
    times: dict[str, list[float]] = defaultdict(list)
    loaded: dict[str, list[str]] = {}
    baseline = []
    for _ in range(repeats):
        baseline.append(_timed_process("pass")[0])
        for name, code in codes.items():
            seconds, loaded[name] = _timed_process(code)
            times[name].append(seconds)
    rows = [{"adapter": "(bare interpreter)", "median_s": statistics.median(baseline), "min_s": min(baseline),
             "loaded": [], "times": baseline}]
    rows += [{"adapter": name, "median_s": statistics.median(times[name]), "min_s": min(times[name]),
              "loaded": loaded[name], "times": times[name]} for name in names]
    return rows


# -- logs -----------------------------------------------------------------------------------------
STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")
RULE = re.compile(r"INFO zoomin: rule (\w+),")
STARTUP = re.compile(r"INFO zoomin: start-up: ([\d.]+) s")
WORK = re.compile(r"INFO zoomin: work: ([\d.]+) s")
EPOCH = re.compile(r"INFO zoomin\.training\.loop: epoch (\d+): .*\(([\d.]+)s\)$")


def _stamp(line: str) -> datetime | None:
    match = STAMP.match(line)
    return datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f") if match else None


def parse_log(path: Path) -> dict | None:
    """One job's log: its rule, start-up and work seconds, and (train) the seconds to its first epoch."""
    job: dict = {"log": str(path)}
    begun = first_epoch_start = None
    for line in path.read_text(errors="replace").splitlines():
        line = line.split("\r")[-1]  # progress bars share lines with log records
        if match := RULE.search(line):
            job["rule"], begun = match.group(1), _stamp(line)
        elif match := STARTUP.search(line):
            job["startup_s"] = float(match.group(1))
        elif match := WORK.search(line):
            job["work_s"] = float(match.group(1))
        elif (match := EPOCH.search(line)) and match.group(1) == "1" and first_epoch_start is None:
            ended = _stamp(line)
            first_epoch_start = ended.timestamp() - float(match.group(2)) if ended else None
    if "rule" not in job or "work_s" not in job:
        return None
    if begun is not None and first_epoch_start is not None:
        job["setup_s"] = max(0.0, first_epoch_start - begun.timestamp())
    benchmark = path.with_name(path.stem + ".benchmark.tsv")
    if benchmark.exists():
        with benchmark.open() as handle:
            job["benchmark_s"] = float(next(csv.DictReader(handle, delimiter="\t"))["s"])
    return job


def summarise_logs(workdir: Path) -> dict:
    jobs = [job for path in sorted((workdir / "logs").rglob("*.log")) if (job := parse_log(path))]
    by_rule: dict[str, list[dict]] = defaultdict(list)
    for job in jobs:
        by_rule[job["rule"]].append(job)
    rules = []
    for rule, group in sorted(by_rule.items()):
        startup = sum(job.get("startup_s", 0.0) for job in group)
        setup = sum(job.get("setup_s", 0.0) for job in group)
        work = sum(job["work_s"] for job in group)
        rules.append({
            "rule": rule, "jobs": len(group),
            "startup_s": startup, "setup_s": setup, "work_s": work, "job_s": startup + work,
            "before_work_share": (startup + setup) / (startup + work) if startup + work else 0.0,
            "benchmark_s": sum(job.get("benchmark_s", 0.0) for job in group) if all(
                "benchmark_s" in job for job in group) else None,
            "median_startup_s": statistics.median(job.get("startup_s", 0.0) for job in group),
        })
    total_before = sum(r["startup_s"] + r["setup_s"] for r in rules)
    total = sum(r["job_s"] for r in rules)
    return {"rules": rules, "jobs": len(jobs), "job_s": total, "before_work_s": total_before,
            "before_work_share": total_before / total if total else 0.0}


def _print_rules(summary: dict) -> None:
    print("| rule | jobs | start-up s (median per job) | train: views, model, optimiser s | work s | "
          "before work / job time | Snakemake benchmark s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in summary["rules"]:
        bench = "" if r["benchmark_s"] is None else f"{r['benchmark_s']:.0f}"
        share = 100 * r["before_work_share"]
        print(f"| {r['rule']} | {r['jobs']} | {r['startup_s']:.0f} ({r['median_startup_s']:.1f}) | "
              f"{r['setup_s']:.0f} | {r['work_s'] - r['setup_s']:.0f} | {share:.0f} % | {bench} |")
    print(f"| all | {summary['jobs']} | | | | {100 * summary['before_work_share']:.0f} % "
          f"({summary['before_work_s']:.0f} of {summary['job_s']:.0f} s) | |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    imports = commands.add_parser("imports", help="time each adapter's imports in fresh interpreters")
    imports.add_argument("--repeats", type=int, default=5)
    imports.add_argument("--only", nargs="*", help="adapters (default: every workflow/scripts/*.py)")
    imports.add_argument("--with-optimizer", action="store_true", help="train: also construct Adam")
    imports.add_argument("--json", type=Path, help="also write the rows as JSON")
    logs = commands.add_parser("logs", help="start-up and work per rule of a finished workflow directory")
    logs.add_argument("workdir", type=Path)
    logs.add_argument("--json", type=Path, help="also write the summary as JSON")
    args = parser.parse_args(argv)

    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    if args.command == "imports":
        names = args.only or sorted(path.stem for path in SCRIPTS.glob("*.py"))
        print("| adapter | median s | min s | heavy packages loaded |")
        print("|---|---:|---:|---|")
        rows = time_imports(names, args.repeats, args.with_optimizer)
        for row in rows:
            print(f"| {row['adapter']} | {row['median_s']:.2f} | {row['min_s']:.2f} | {', '.join(row['loaded'])} |")
        if args.json:
            args.json.write_text(json.dumps(rows, indent=2))
    else:
        summary = summarise_logs(args.workdir)
        _print_rules(summary)
        if args.json:
            args.json.write_text(json.dumps(summary, indent=2))
    print(f"load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
