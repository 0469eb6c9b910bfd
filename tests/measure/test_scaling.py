"""Zoom-In never materialises the full-resolution image, and its inference memory grows far more
slowly with the image side than a full-resolution CNN's (docs/method.md §8)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zoomin.image_access import InMemoryImage
from zoomin.measure import AllocationTracker, measure_peak_memory
from zoomin.models import build_model

pytestmark = pytest.mark.slow

SIDES = (1000, 2000)


def _image(side: int) -> InMemoryImage:
    pixels = np.random.default_rng(side).integers(0, 256, (side, side, 3), dtype=np.uint8)
    return InMemoryImage(pixels)


def _full_resolution_bytes(side: int) -> int:
    return side * side * 3 * 4  # float32, 3 channels


def _forward(model: torch.nn.Module, image: InMemoryImage):
    def run() -> None:
        with torch.inference_mode():
            model([image], generator=torch.Generator().manual_seed(0), sampling="sample")

    return run


@pytest.fixture(scope="module")
def models() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    return {
        "zoomin": build_model(
            "zoomin", num_classes=2, tile=250, subtile=27, s1=0.1, s2=0.2, n=10, feature="lenet"
        ).eval(),
        "cnn": build_model("cnn", num_classes=2, scale=1.0).eval(),
    }


@pytest.fixture(scope="module")
def peaks(models) -> dict[tuple[str, int], int]:
    """Forward peak bytes of each model at each side (one measured pass each)."""
    return {
        (name, side): measure_peak_memory(_forward(model, _image(side)), "cpu").forward_peak_bytes
        for name, model in models.items()
        for side in SIDES
    }


def test_zoomin_never_allocates_anything_near_full_resolution(models):
    side = max(SIDES)
    with AllocationTracker("cpu") as tracker:
        _forward(models["zoomin"], _image(side))()
    full = _full_resolution_bytes(side)
    assert tracker.largest_allocation_bytes < full / 20, tracker.largest_allocation_op
    assert tracker.peak_bytes < full / 5


def test_the_full_resolution_cnn_does_allocate_full_resolution(models):
    # the same check catches a model that does materialise the image
    side = min(SIDES)
    with AllocationTracker("cpu") as tracker:
        _forward(models["cnn"], _image(side))()
    assert tracker.largest_allocation_bytes >= _full_resolution_bytes(side)


def test_zoomin_peak_grows_far_slower_than_pixels(peaks):
    small, large = SIDES
    ratio = peaks[("zoomin", large)] / peaks[("zoomin", small)]
    assert ratio < 2.5, f"Zoom-In peak grew {ratio:.2f}x when the side doubled"


def test_full_resolution_cnn_peak_grows_with_pixels(peaks):
    small, large = SIDES
    ratio = peaks[("cnn", large)] / peaks[("cnn", small)]
    assert 3.0 < ratio < 5.0, f"CNN peak grew {ratio:.2f}x when the side doubled"


def test_zoomin_needs_far_less_than_the_cnn(peaks):
    for side in SIDES:
        assert peaks[("zoomin", side)] * 20 < peaks[("cnn", side)]
