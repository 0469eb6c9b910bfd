"""Wall-clock time of a call: warm-up runs, then the median of timed repeats, within a time budget.

On CUDA the device is synchronised before starting and after finishing each timed run, so the time
covers the kernels and not only their launch.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class TimingReport:
    """All timed repeats in milliseconds, and their median."""

    times_ms: tuple[float, ...]

    @property
    def median_ms(self) -> float:
        return float(statistics.median(self.times_ms))


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(
    fn: Callable[[], Any], device: torch.device | str, repeats: int, warmup: int, budget_s: float = math.inf
) -> TimingReport:
    """Run ``fn()`` ``warmup`` times untimed, then ``repeats`` times timed; stop early once the runs
    have taken ``budget_s`` seconds in all (after at least one timed run), so that a pass of many
    seconds (a whole slide read at full resolution) is not repeated for a few more digits."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    device = torch.device(device)
    began = time.perf_counter()
    for _ in range(warmup):
        if time.perf_counter() - began >= budget_s:
            break
        fn()
    _synchronize(device)
    times: list[float] = []
    for _ in range(repeats):
        if times and time.perf_counter() - began >= budget_s:
            break
        _synchronize(device)
        start = time.perf_counter()
        fn()
        _synchronize(device)
        times.append((time.perf_counter() - start) * 1000.0)
    return TimingReport(tuple(times))
