"""Glue for the workflow's ``script:`` adapters: logging into the rule's log file, clear failures.

Every workflow job is a fresh Python process, so an adapter imports only what its rule uses
(tests/test_import_cost.py pins that per kind of job), and each job's log says how long the process
took to get to the rule's work (interpreter, Snakemake's preamble, the adapter's imports) and how
long the work took: benchmarks/startup.py adds those lines up per rule.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from zoomin.errors import UserError


def run_script(snakemake: Any, body: Callable[[], Any]) -> None:
    """Log to ``snakemake.log[0]`` and stderr, run ``body``; a UserError exits 1 with one clear line
    (logged once: the stderr handler shows it to the user, the file handler keeps it in the log)."""
    started = process_age()
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if snakemake.log:
        handlers.append(logging.FileHandler(snakemake.log[0], mode="w"))
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )
    threads = max(1, int(snakemake.threads))
    torch = sys.modules.get("torch")  # only jobs that use torch import it (slide caches stay small)
    if torch is not None:
        torch.set_num_threads(threads)
    log = logging.getLogger("zoomin")
    log.info("rule %s, wildcards %s, %d thread(s)", snakemake.rule, dict(snakemake.wildcards), threads)
    if started is not None:
        log.info("start-up: %.2f s from the process's start to the rule's work (interpreter and imports)", started)
    begun = time.perf_counter()
    try:
        body()
    except UserError as error:
        log.error("%s", error)
        sys.exit(1)
    except Exception:
        log.exception("failed")
        raise
    log.info("work: %.2f s", time.perf_counter() - begun)
    # The interpreter's exit collects every object of the imported libraries, about 2 s for a
    # training job's torch, sympy and torch._dynamo (0.5 s frozen; benchmarks/README.md, "Job
    # start-up"), while Snakemake keeps the job's core. Frozen objects are skipped by those
    # collections; the atexit handlers (the log files' flush) and finalizers still run, and the
    # rule's outputs are complete and closed by now.
    gc.freeze()


def process_age() -> float | None:
    """Seconds since this process started, from Linux's ``/proc/self/stat`` (clock ticks since
    boot, 10 ms here); ``None`` where there is no such file (macOS, Windows)."""
    try:
        with open("/proc/self/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
        start = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22 of proc(5): starttime
        return time.clock_gettime(time.CLOCK_BOOTTIME) - start
    except (OSError, IndexError, ValueError, AttributeError):
        return None
