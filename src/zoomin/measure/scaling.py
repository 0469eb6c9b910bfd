"""Peak inference memory, FLOPs and time per image against image side (paper Fig. 4, right).

Shared by ``benchmarks/memory.py`` (the recorded benchmark) and the workflow's ``memory_scaling``
rule (the figure): both call :func:`memory_vs_side`. Methods, at the colon-cancer settings of
docs/method.md §11.2 (the model registry's defaults; randomly initialised models -- the cost of a
forward pass does not depend on the weights, only which tiles are sampled does, and the seed fixes
those):

* ``zoomin``        -- Zoom-In (T 250, P 27, s1 0.1, s2 0.2, N 10, LeNet features), lazy image;
* ``ats_published`` -- ATS (s 0.2, P 27, N 10) reading a ``DeviceTensorImage``: the whole image is
  a float tensor on the device and view and patches are cut from it, as in the published code;
* ``ats_lazy``      -- the same ATS reading an ``InMemoryImage`` (view by Pillow, patches cropped);
* ``cnn``           -- the 8-layer, 32-channel ResNet on the full-resolution image (scale 1.0).

The image is synthetic uniform noise (NumPy ``uint8``) of each side. Each cell comes from
:func:`zoomin.measure.measure_inference` (batch 1). A (method, side) whose peak, extrapolated from
the previous side, would not fit in ``headroom`` of the memory available is skipped and listed; a
pass predicted slower than ``slow_seconds`` is timed once without warm-up.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd
import torch

from zoomin.image_access import DeviceTensorImage, ImageAccess, InMemoryImage
from zoomin.measure.cost import measure_inference

log = logging.getLogger(__name__)

METHODS = ("zoomin", "ats_published", "ats_lazy", "cnn")
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
    from zoomin.models import build_model

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
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 2**62


def predicted(previous: dict[str, float] | None, side: int, key: str) -> float | None:
    """Extrapolate a cost quadratically in the side from the previous side's row (an upper bound
    for the sampling methods, about right for the CNN)."""
    if previous is None:
        return None
    return previous[key] * (side / previous["image_side"]) ** 2


def memory_vs_side(
    sides: tuple[int, ...],
    device: torch.device,
    seed: int,
    repeats: int,
    warmup: int,
    slow_seconds: float = 5.0,
    headroom: float = 0.6,
    methods: tuple[str, ...] = METHODS,
    max_side: dict[str, int] | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """Measure every method at every side up to its ``max_side`` (if given); returns the rows
    (:data:`COLUMNS`) and the (method, side) pairs skipped."""
    max_side = max_side or {}
    models = build_models(device, seed)
    rows: list[dict] = []
    skipped: list[str] = []
    previous: dict[str, dict[str, float]] = {}
    for side in sides:
        pixels = np.random.default_rng(seed + side).integers(0, 256, (side, side, 3), dtype=np.uint8)
        for method in methods:
            if side > max_side.get(method, side):
                skipped.append(f"{method} at {side}: above its largest side {max_side[method]}")
                log.info("skip %s", skipped[-1])
                continue
            expected_mb = predicted(previous.get(method), side, "peak_memory_mb")
            # the lazy methods also need the uint8 image in host memory, already allocated
            if expected_mb is not None and expected_mb * 2**20 > headroom * available_bytes(device):
                skipped.append(f"{method} at {side}: predicted {expected_mb:,.0f} MB does not fit")
                log.warning("skip %s", skipped[-1])
                continue
            expected_ms = predicted(previous.get(method), side, "time_ms")
            slow = expected_ms is not None and expected_ms > 1000 * slow_seconds
            n_repeats, n_warmup = (1, 0) if slow else (repeats, warmup)
            image = make_image(method, pixels, device)
            start = time.perf_counter()
            result = measure_inference(models[method], image, device, seed=seed, repeats=n_repeats, warmup=n_warmup)
            del image
            row = {"method": method, "image_side": side, **result, "repeats": n_repeats, "device": str(device)}
            rows.append(row)
            previous[method] = row
            log.info(
                "%-13s side %5d: %9.2f MB  %8.3f GFLOPs  %9.1f ms  (%.1f s)",
                method, side, row["peak_memory_mb"], row["gflops"], row["time_ms"], time.perf_counter() - start,
            )
    return pd.DataFrame(rows, columns=COLUMNS), skipped
