"""Per-image inference cost of a model (batch 1): MACs (and FLOPs), peak memory and time.

:func:`measure_inference` measures one image; the evaluation step measures a few test images with
it (:mod:`zoomin.measure.across_images`). Every forward pass gets a fresh
``torch.Generator`` (CPU) seeded with ``seed``, so every pass samples the same tiles and sub-tiles
and does the same work. The passes are: one under ``FlopCounterMode``, one under the memory
measurement, then (with ``timed``) ``warmup`` untimed and ``repeats`` timed passes; all under
``torch.inference_mode`` with the model in eval mode (its training flag is restored afterwards).

Reported memory (``MB`` = 2**20 bytes), identical definitions on CPU and CUDA:

    peak_memory_mb = parameters_mb + input_mb + forward_peak_mb

* ``parameters_mb`` -- parameters and buffers of the model on the device;
* ``input_mb`` -- torch tensors the image object holds on the device before the call (the whole
  image for ``DeviceTensorImage``, i.e. ATS as published; 0 for ``InMemoryImage``, whose pixels are
  a NumPy array in host memory like a slide on disk);
* ``forward_peak_mb`` -- peak of the tensors allocated during the forward pass, above what was live
  before it (see :mod:`zoomin.measure.memory` for how CPU and CUDA measure it).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from zoomin.image_access import ImageAccess
from zoomin.measure.flops import FLOPS_PER_MAC, count_flops
from zoomin.measure.memory import MB, measure_peak_memory, module_bytes, resident_tensor_bytes
from zoomin.measure.timing import time_call


def _forward(
    model: torch.nn.Module, image: ImageAccess, seed: int, sampling: str
) -> Callable[[], Any]:
    def run() -> None:
        generator = torch.Generator().manual_seed(seed)
        clear_caches = getattr(model, "clear_caches", None)
        if clear_caches is not None:  # a measured pass starts from the pixels
            clear_caches()
        with torch.inference_mode():
            model([image], generator=generator, sampling=sampling)

    return run


def measure_inference(
    model: torch.nn.Module,
    image: ImageAccess,
    device: torch.device | str,
    seed: int,
    repeats: int,
    warmup: int,
    sampling: str = "sample",
    budget_s: float = math.inf,
    timed: bool = True,
) -> dict[str, float | str | None]:
    """Measure one forward pass of ``model([image], generator=..., sampling=sampling)`` on ``device``.

    Returns ``gmacs`` (multiply-accumulates, 1e9; the paper's unit: its Eq. 10 counts
    ``C_in K^2 H W C_out``), ``gflops`` (``2 * gmacs``, the FLOP counter's unit), ``peak_memory_mb``,
    ``time_ms`` (median of ``repeats`` after ``warmup``, fewer once the timing has taken
    ``budget_s``; ``None`` without ``timed``), ``largest_allocation_mb`` (largest single tensor
    allocated during the pass), and the parts of the peak: ``parameters_mb``, ``input_mb``,
    ``forward_peak_mb``, plus ``memory_method``.
    """
    device = torch.device(device)
    was_training = model.training
    model.to(device).eval()
    try:
        run = _forward(model, image, seed, sampling)
        flops = count_flops(run)
        memory = measure_peak_memory(run, device)
        timing = time_call(run, device, repeats=repeats, warmup=warmup, budget_s=budget_s) if timed else None
    finally:
        model.train(was_training)
    parameters = module_bytes(model, device)
    resident = resident_tensor_bytes(image, device)
    return {
        "gmacs": flops / FLOPS_PER_MAC / 1e9,
        "gflops": flops / 1e9,
        "peak_memory_mb": (parameters + resident + memory.forward_peak_bytes) / MB,
        "time_ms": None if timing is None else timing.median_ms,
        "largest_allocation_mb": memory.largest_allocation_mb,
        "parameters_mb": parameters / MB,
        "input_mb": resident / MB,
        "forward_peak_mb": memory.forward_peak_mb,
        "memory_method": memory.method,
    }
