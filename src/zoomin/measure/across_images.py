"""Inference cost over a few test images, as the paper reports it: the worst-case memory, the time
and MACs of the largest image.

One image is not representative when the images differ in size (fMoW, whole slides) and the work
depends on the draws (which tiles a Zoom-In pass opens). So the evaluation measures ``count``
test images (``measure.images``), chosen without randomness by :func:`cost_image_indices`: the
largest by pixel count, and the others at evenly spaced ranks of pixel count down to the smallest.
Each is measured by :func:`zoomin.measure.measure_inference` with the run's seed (the same draws as
a repeated measurement); only the largest is timed, since time is reported for it alone.

:func:`measure_across_images` returns the fields the evaluation writes into ``metrics.json``:

* ``peak_memory_mb`` -- the largest peak over the measured images (the paper's "peak memory");
* ``time_ms`` -- the median of the timed passes on the largest image;
* ``gmacs`` -- multiply-accumulates of one pass over the largest image (the paper's unit), and
  ``gflops`` = 2 x ``gmacs``;
* ``cost_images`` / ``cost_image_ids`` -- how many and which images were measured, largest first;
* ``cost_basis`` -- the sentence per number saying what it was measured on;
* ``cost_per_image`` -- each measured image's size, peak memory and MACs (time for the largest).

All numbers are of ONE forward pass (one test-time draw): with ``test_draws`` M > 1 the evaluation
costs M times the time and MACs, at the same peak memory (the draws run one after the other).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from zoomin.image_access import ImageAccess
from zoomin.measure.cost import measure_inference

COST_BASIS = {
    "peak_memory_mb": "the largest peak over the measured images (cost_image_ids)",
    "time_ms": "median of the timed passes on the largest test image (the first of cost_image_ids)",
    "gmacs": "multiply-accumulates of one pass over the largest test image",
    "gflops": "2 x gmacs (the FLOP counter's unit)",
}


def cost_image_indices(pixel_counts: Sequence[int], count: int) -> list[int]:
    """Which images to measure: ``count`` indices into ``pixel_counts``, the largest image first, then
    the images at evenly spaced ranks of pixel count down to the smallest (ties in the order given).
    All of them when there are at most ``count``."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    order = sorted(range(len(pixel_counts)), key=lambda i: (-int(pixel_counts[i]), i))
    if len(order) <= count:
        return order
    if count == 1:
        return order[:1]
    last = len(order) - 1
    # step last / (count - 1) >= 1, so the floored ranks are distinct; rank 0 is the largest, rank
    # ``last`` the smallest
    return [order[k * last // (count - 1)] for k in range(count)]


def measure_across_images(
    model: torch.nn.Module,
    images: Sequence[tuple[str, ImageAccess]],
    device: torch.device | str,
    seed: int,
    count: int,
    repeats: int,
    warmup: int,
    sampling: str = "sample",
    budget_s: float = math.inf,
) -> dict[str, Any]:
    """Measure ``count`` of ``images`` (``(image_id, image)`` pairs); see the module docstring."""
    if not images:
        raise ValueError("no images to measure")
    chosen = cost_image_indices([image.size[0] * image.size[1] for _, image in images], count)
    per_image: list[dict[str, Any]] = []
    largest_gflops = 0.0
    for rank, index in enumerate(chosen):
        image_id, image = images[index]
        cost = measure_inference(
            model, image, device, seed=seed, repeats=repeats, warmup=warmup,
            sampling=sampling, budget_s=budget_s, timed=rank == 0,
        )
        if rank == 0:
            largest_gflops = float(cost["gflops"])
        per_image.append(
            {
                "image_id": image_id,
                "height": int(image.size[0]),
                "width": int(image.size[1]),
                "peak_memory_mb": cost["peak_memory_mb"],
                "gmacs": cost["gmacs"],
                "time_ms": cost["time_ms"],
            }
        )
    largest = per_image[0]
    worst = max(per_image, key=lambda row: row["peak_memory_mb"])
    return {
        "peak_memory_mb": worst["peak_memory_mb"],
        "time_ms": largest["time_ms"],
        "gmacs": largest["gmacs"],
        "gflops": largest_gflops,
        "cost_images": len(per_image),
        "cost_image_ids": [row["image_id"] for row in per_image],
        "peak_memory_image_id": worst["image_id"],
        "cost_basis": dict(COST_BASIS),
        "cost_per_image": per_image,
    }
