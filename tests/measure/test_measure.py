"""Per-image measurement: the allocation tracker against known allocations, FLOPs against analytic
counts, timing as a median of repeats, and measure_inference on a toy model of the model contract."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from zoomin.image_access import DeviceTensorImage, InMemoryImage
from zoomin.measure import (
    MB,
    AllocationTracker,
    count_flops,
    measure_inference,
    measure_peak_memory,
    module_bytes,
    resident_tensor_bytes,
    time_call,
)

FLOATS_PER_MB = MB // 4


def _peak_mb(fn) -> float:
    return measure_peak_memory(fn, "cpu").forward_peak_mb


def test_single_allocation_is_counted():
    def fn():
        x = torch.empty(100 * FLOATS_PER_MB)
        x.fill_(1.0)

    report = measure_peak_memory(fn, "cpu")
    assert report.forward_peak_mb == pytest.approx(100, abs=0.5)
    assert report.largest_allocation_mb == pytest.approx(100, abs=0.01)
    assert report.method == "dispatch-tracker"


def test_freed_tensor_is_not_double_counted():
    def fn():
        a = torch.ones(50 * FLOATS_PER_MB)
        del a
        b = torch.ones(50 * FLOATS_PER_MB)
        del b

    assert _peak_mb(fn) == pytest.approx(50, abs=0.5)


def test_simultaneously_live_tensors_add_up():
    def fn():
        a = torch.ones(30 * FLOATS_PER_MB)
        b = torch.zeros(20 * FLOATS_PER_MB)
        return a, b

    report = measure_peak_memory(fn, "cpu")
    assert report.forward_peak_mb == pytest.approx(50, abs=0.5)
    assert report.largest_allocation_mb == pytest.approx(30, abs=0.01)


def test_views_and_in_place_ops_do_not_count_twice():
    def fn():
        a = torch.zeros(40 * FLOATS_PER_MB)
        views = [a[: 10 * FLOATS_PER_MB], a.view(40, -1).t(), a.reshape(-1, 4), a.expand(2, -1)]
        a.add_(1.0).mul_(2.0)
        torch.add(a, 1.0, out=a)
        return views

    assert _peak_mb(fn) == pytest.approx(40, abs=0.5)


def test_tensors_that_existed_before_are_not_counted():
    before = torch.zeros(20 * FLOATS_PER_MB)

    def fn():
        view = before[::2]
        before.add_(1.0)
        return view, before.reshape(-1, 8)

    assert _peak_mb(fn) < 0.01


def test_intermediates_of_composite_ops_are_counted():
    x = torch.zeros(1, 3, 64, 64)
    conv = torch.nn.Conv2d(3, 8, 3, padding=1)

    def fn():
        with torch.inference_mode():
            return torch.relu(conv(x))

    # conv output (8x64x64 float) is live while relu writes a second one of the same size
    expected = 2 * 8 * 64 * 64 * 4 / MB
    assert _peak_mb(fn) == pytest.approx(expected, rel=0.05)


def test_release_after_peak_lowers_live_bytes():
    with AllocationTracker("cpu") as tracker:
        a = torch.ones(FLOATS_PER_MB)
        b = torch.ones(FLOATS_PER_MB)
        del a, b
        live_after = tracker.live_bytes
    assert tracker.peak_bytes == 2 * MB
    assert live_after == 0
    assert tracker.num_allocations == 2


def test_device_filter_ignores_other_devices():
    with AllocationTracker("cuda") as tracker:
        torch.ones(FLOATS_PER_MB)
    assert tracker.peak_bytes == 0


def test_numpy_memory_is_outside_torch():
    pixels = np.zeros((500, 500, 3), dtype=np.uint8)

    def fn():
        return torch.from_numpy(pixels)  # shares NumPy's memory: no torch allocation

    assert _peak_mb(fn) == 0


def test_resident_and_module_bytes():
    pixels = np.zeros((100, 120, 3), dtype=np.uint8)
    assert resident_tensor_bytes(InMemoryImage(pixels), "cpu") == 0
    assert resident_tensor_bytes(DeviceTensorImage(pixels, "cpu"), "cpu") == 3 * 100 * 120 * 4
    linear = torch.nn.Linear(10, 5)
    assert module_bytes(linear) == (10 * 5 + 5) * 4


def test_linear_flops_match_analytic_count():
    linear = torch.nn.Linear(64, 32)
    x = torch.randn(1, 64)
    assert count_flops(lambda: linear(x)) == 2 * 64 * 32


def test_conv_flops_match_analytic_count():
    conv = torch.nn.Conv2d(3, 16, kernel_size=5, stride=1, padding=0)
    x = torch.randn(1, 3, 32, 32)
    out_side = 32 - 5 + 1
    assert count_flops(lambda: conv(x)) == 2 * 16 * out_side * out_side * 3 * 5 * 5


def test_time_is_positive_and_the_median_of_repeats():
    durations = iter([0.05, 0.001, 0.030, 0.010, 0.020])  # first call is the warm-up
    calls = []

    def fn():
        calls.append(1)
        time.sleep(next(durations))

    report = time_call(fn, "cpu", repeats=4, warmup=1)
    assert len(calls) == 5
    assert len(report.times_ms) == 4
    assert all(t > 0 for t in report.times_ms)
    assert report.median_ms == pytest.approx(float(np.median(report.times_ms)))
    assert 10 <= report.median_ms < 30  # median of ~1, 30, 10, 20 ms


@pytest.mark.parametrize(("budget_s", "calls_made"), [(0.12, 3), (0.001, 2), (10.0, 7)])
def test_timing_stops_once_its_budget_is_spent_after_one_timed_run(budget_s, calls_made):
    calls = []

    def fn():
        calls.append(1)
        time.sleep(0.05)

    report = time_call(fn, "cpu", repeats=5, warmup=2, budget_s=budget_s)
    assert len(calls) == calls_made  # 0.12 s: two warm-ups (0.10 s) and one timed run; 0.001 s: one of each
    assert len(report.times_ms) == max(1, calls_made - 2)


class ToyModel(torch.nn.Module):
    """Follows the model contract: a list of images, a generator and a sampling mode."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.head = torch.nn.Linear(4, 2)
        self.calls: list[tuple[int, str]] = []

    def forward(self, images, generator=None, sampling="sample"):
        draw = int(torch.randint(0, 10**6, (1,), generator=generator))
        self.calls.append((draw, sampling))
        view = images[0].view(0.5)[None].to(self.head.weight.device)
        features = self.conv(view).mean(dim=(2, 3))
        return SimpleNamespace(logits=self.head(features))


@pytest.mark.parametrize("image_kind", ["in_memory", "device_tensor"])
def test_measure_inference_on_a_toy_model(image_kind):
    pixels = np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)
    image = InMemoryImage(pixels) if image_kind == "in_memory" else DeviceTensorImage(pixels)
    model = ToyModel().train()
    result = measure_inference(model, image, "cpu", seed=3, repeats=3, warmup=1)

    assert set(result) >= {"gflops", "peak_memory_mb", "time_ms", "largest_allocation_mb"}
    conv_flops = 2 * 4 * 100 * 100 * 3 * 9
    assert result["gflops"] == pytest.approx((conv_flops + 2 * 4 * 2) / 1e9)
    assert result["time_ms"] > 0
    assert result["parameters_mb"] == pytest.approx(module_bytes(model) / MB)
    assert result["peak_memory_mb"] == pytest.approx(
        result["parameters_mb"] + result["input_mb"] + result["forward_peak_mb"]
    )
    expected_input = 0.0 if image_kind == "in_memory" else 3 * 200 * 200 * 4 / MB
    assert result["input_mb"] == pytest.approx(expected_input)
    # the 100x100 view and the 4x100x100 conv output are live together
    assert result["forward_peak_mb"] >= (3 + 4) * 100 * 100 * 4 / MB
    assert result["largest_allocation_mb"] == pytest.approx(4 * 100 * 100 * 4 / MB, rel=0.01)
    # flops + memory + warm-up + repeats, each with the same seed and sampling mode
    assert len(model.calls) == 1 + 1 + 1 + 3
    assert len(set(model.calls)) == 1 and model.calls[0][1] == "sample"
    assert model.training  # restored


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_peak_counts_a_known_allocation():
    def fn():
        x = torch.empty(100 * FLOATS_PER_MB, device="cuda")
        x.fill_(1.0)

    report = measure_peak_memory(fn, "cuda")
    assert report.method == "cuda-allocator"
    assert report.forward_peak_mb == pytest.approx(100, abs=2)
    assert report.largest_allocation_mb == pytest.approx(100, abs=0.01)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_allocator_and_tracker_agree_on_a_small_net():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU()).cuda()
    x = torch.randn(1, 3, 512, 512, device="cuda")

    def fn():
        with torch.inference_mode():
            net(x)

    cuda = measure_peak_memory(fn, "cuda")
    with AllocationTracker("cuda") as tracker:
        fn()
    assert tracker.peak_bytes <= cuda.forward_peak_bytes
    assert cuda.forward_peak_bytes <= 1.5 * tracker.peak_bytes + 64 * MB  # + cuDNN workspace
