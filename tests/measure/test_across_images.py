"""Cost over several test images: which images are measured, the peak memory as the maximum over
them, time and MACs of the largest alone, and MACs as half the FLOP counter's FLOPs (the paper's unit)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from zoomin.image_access import InMemoryImage
from zoomin.measure import MB, cost_image_indices, measure_across_images, measure_inference


def test_the_largest_image_comes_first_then_evenly_spaced_ranks_down_to_the_smallest():
    pixels = [100, 400, 50, 400, 10, 200, 300]  # by size: 1, 3 (a tie: in the order given), 6, 5, 0, 2, 4
    assert cost_image_indices(pixels, 1) == [1]
    assert cost_image_indices(pixels, 3) == [1, 5, 4]  # ranks 0, 3, 6 of 7
    assert cost_image_indices(pixels, 4) == [1, 6, 0, 4]  # ranks 0, 2, 4, 6
    assert cost_image_indices(pixels, 7) == cost_image_indices(pixels, 70) == [1, 3, 6, 5, 0, 2, 4]
    for count in range(1, 8):
        chosen = cost_image_indices(pixels, count)
        assert len(set(chosen)) == count and chosen[0] == 1
    assert cost_image_indices(pixels, 2)[-1] == 4  # the smallest is always among several
    with pytest.raises(ValueError):
        cost_image_indices(pixels, 0)


class WidthHungryModel(torch.nn.Module):
    """A conv over the half-scale view (analytic MACs) that also holds a buffer of 4 KB per pixel of
    the image's WIDTH: its peak memory follows the width, not the pixel count."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.head = torch.nn.Linear(4, 2)
        self.calls: list[tuple[int, int]] = []

    def forward(self, images, generator=None, sampling="sample"):
        height, width = images[0].size
        self.calls.append((height, width))
        scratch = torch.ones(width * 1024)
        features = self.conv(images[0].view(0.5)[None]).mean(dim=(2, 3)) + scratch[:1]
        return SimpleNamespace(logits=self.head(features))


def image(height: int, width: int) -> InMemoryImage:
    return InMemoryImage(np.random.default_rng(height * width).integers(0, 256, (height, width, 3), dtype=np.uint8))


def test_peak_memory_is_the_maximum_over_the_images_and_time_and_macs_are_the_largest_images():
    images = [("narrow", image(400, 50)), ("wide", image(100, 150)), ("small", image(20, 20)), ("mid", image(60, 60))]
    model = WidthHungryModel()
    cost = measure_across_images(model, images, "cpu", seed=0, count=3, repeats=2, warmup=1)

    # by pixels: narrow 20,000, wide 15,000, mid 3,600, small 400; ranks 0, 1 and 3 of 4
    assert cost["cost_images"] == 3 and cost["cost_image_ids"] == ["narrow", "wide", "small"]
    assert cost["peak_memory_image_id"] == "wide"  # the most memory, not the most pixels
    each = {row["image_id"]: row for row in cost["cost_per_image"]}
    assert cost["peak_memory_mb"] == max(row["peak_memory_mb"] for row in each.values())
    # the scratch buffers differ by 100 x 4 KB; the smaller views of wide make up a little of it
    assert 0.8 < (each["wide"]["peak_memory_mb"] - each["narrow"]["peak_memory_mb"]) / ((150 - 50) * 4096 / MB) < 1

    macs = 4 * 200 * 25 * 3 * 9 + 4 * 2  # the conv over narrow's 200x25 view, and the head
    assert cost["gmacs"] == pytest.approx(macs / 1e9) and cost["gflops"] == pytest.approx(2 * macs / 1e9)
    assert cost["time_ms"] == each["narrow"]["time_ms"] > 0
    assert [row["time_ms"] is None for row in cost["cost_per_image"]] == [False, True, True]
    assert set(cost["cost_basis"]) == {"peak_memory_mb", "time_ms", "gmacs", "gflops"}


def test_only_the_largest_image_is_timed():
    images = [("a", image(40, 40)), ("b", image(80, 80)), ("c", image(20, 30))]
    model = WidthHungryModel()
    measure_across_images(model, images, "cpu", seed=0, count=3, repeats=3, warmup=2)
    passes = {size: model.calls.count(size) for size in set(model.calls)}
    # FLOPs and memory passes for each; warm-up and timed passes for the largest only
    assert passes == {(80, 80): 2 + 2 + 3, (40, 40): 2, (20, 30): 2}


def test_measure_inference_gives_macs_as_half_the_counted_flops():
    model = WidthHungryModel()
    result = measure_inference(model, image(64, 64), "cpu", seed=0, repeats=1, warmup=0, timed=False)
    assert result["gflops"] == pytest.approx(2 * result["gmacs"])
    assert result["gmacs"] == pytest.approx((4 * 32 * 32 * 3 * 9 + 4 * 2) / 1e9)
    assert result["time_ms"] is None and len(model.calls) == 2
