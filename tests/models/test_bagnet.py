"""BagNet: the receptive field it declares, mean local evidence, its attention, learning, meters, bad params."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zoomin.errors import ConfigError, UserError
from zoomin.image_access import InMemoryImage
from zoomin.measure import measure_inference
from zoomin.models import build_model
from zoomin.models.bagnet import Bottleneck
from zoomin.models.params import BAGNET_RECEPTIVE_FIELDS

pytestmark = pytest.mark.usefixtures("single_thread")


def random_image(seed: int, height: int, width: int) -> InMemoryImage:
    rng = np.random.default_rng(seed)
    return InMemoryImage(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def input_support(model, row: int, col: int, height: int, width: int) -> tuple[range, range]:
    """Rows and columns of the input on which evidence position ``(row, col)`` depends: where the
    gradient of its features (summed over channels, over three random inputs) is non-zero."""
    x = torch.rand(3, 3, height, width, generator=torch.Generator().manual_seed(0), requires_grad=True)
    model.features(x)[:, :, row, col].sum().backward()
    rows = x.grad.abs().sum(dim=(0, 1, 3)).nonzero()[:, 0]
    cols = x.grad.abs().sum(dim=(0, 1, 2)).nonzero()[:, 0]
    return range(int(rows.min()), int(rows.max()) + 1), range(int(cols.min()), int(cols.max()) + 1)


@pytest.mark.parametrize("q", BAGNET_RECEPTIVE_FIELDS)
def test_each_evidence_position_sees_exactly_a_q_by_q_window(q):
    torch.manual_seed(0)
    model = build_model("bagnet", 2, receptive_field=q, width=8).eval()
    stride = model.features.stride
    height, width = q + 3 * stride + 5, q + 4 * stride + 3
    for row, col in ((0, 0), (1, 2), (3, 4)):
        rows, cols = input_support(model, row, col, height, width)
        assert (len(rows), len(cols)) == (q, q), (row, col)
        assert (rows.start, cols.start) == (stride * row, stride * col)


def test_deeper_stages_keep_the_window_and_an_extra_three_by_three_would_widen_it():
    """BagNet's 3,4,6,3 layout (extra blocks 1x1) keeps q = 33; the reference code's default of a
    3x3 in every block would not, and the window check sees one extra 3x3 at once."""
    torch.manual_seed(0)
    model = build_model("bagnet", 2, receptive_field=33, width=8, blocks="3,4,6,3").eval()
    assert len(input_support(model, 0, 0, 80, 80)[0]) == 33  # extra blocks are 1x1: still 33
    first_extra = [m for m in model.features.stages if isinstance(m, Bottleneck)][1]
    first_extra.spatial[0] = torch.nn.Conv2d(first_extra.spatial[0].in_channels, first_extra.spatial[0].out_channels, 3)
    first_extra.centre = 1
    assert len(input_support(model, 0, 0, 80, 80)[0]) == 33 + 2 * 2  # a 3x3 at stride 2 adds 4 px


def test_logits_are_the_mean_of_the_local_evidence_and_attention_lies_over_the_windows():
    torch.manual_seed(0)
    model = build_model("bagnet", 3, receptive_field=17, width=4).eval()
    image = random_image(1, 60, 75)
    out = model([image])
    evidence = model.evidence_maps([image.view(1.0)])[0]
    assert evidence.shape == (3, (60 - 17) // 8 + 1, (75 - 17) // 8 + 1)
    assert torch.allclose(out.logits[0], evidence.mean(dim=(1, 2)), atol=1e-6)
    attention = out.attention[0].detached()
    predicted = int(out.logits.argmax())
    centred = evidence[predicted] - evidence.mean(dim=0)
    assert torch.allclose(attention.stage1.probs, torch.softmax(centred.reshape(-1), 0).reshape(centred.shape))
    assert attention.stage1.probs.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert attention.sampled is None and attention.stage2 == {}
    # cell (i, j) is centred on its window [8i, 8i + 17): centre 8i + 8.5
    (top, left), (cell_h, cell_w) = attention.stage1.origin, attention.stage1.cell
    assert (cell_h, cell_w) == (8, 8)
    assert top + 2.5 * cell_h == pytest.approx(8 * 2 + 17 / 2) and left + 0.5 * cell_w == pytest.approx(17 / 2)
    _, _, map_h, map_w = attention.stage1.bounds()
    assert top + map_h <= 60 and left + map_w <= 75


def test_attention_geometry_scales_with_the_view():
    torch.manual_seed(0)
    model = build_model("bagnet", 2, receptive_field=9, width=4, scale=0.5).eval()
    attention = model([random_image(2, 80, 96)]).attention[0]
    assert attention.stage1.cell == (16.0, 16.0)  # 8 view px of a half-scale view
    assert attention.stage1.probs.shape == ((40 - 9) // 8 + 1, (48 - 9) // 8 + 1)


def test_forward_and_backward_on_a_tiny_image():
    torch.manual_seed(0)
    model = build_model("bagnet", 2, receptive_field=33, width=4)
    out = model([random_image(3, 41, 48), random_image(4, 41, 48)])  # two windows per row: BatchNorm trains
    assert out.logits.shape == (2, 2) and torch.equal(out.entropy, torch.zeros(2))
    out.logits.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_views_too_small_are_refused_with_what_to_change():
    model = build_model("bagnet", 2, receptive_field=33, width=4)
    with pytest.raises(UserError, match=r"image 0 .* 32x40 px; it needs at least 33 px a side.*`receptive_field`"):
        model([random_image(0, 32, 40)])
    with pytest.raises(UserError, match=r"image 1 .* 36x36 px.*one side of at least 41 px"):
        model([random_image(0, 50, 50), random_image(1, 36, 36)])  # one window alone in training
    model.eval()
    assert model([random_image(1, 36, 36)]).logits.shape == (1, 2)


def square_images(count: int, seed: int, side: int = 40, square: int = 5) -> tuple[list[InMemoryImage], torch.Tensor]:
    """Nearly flat grey; label 1 images have one bright square at a random place."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for i in range(count):
        pixels = rng.integers(88, 93, (side, side, 3), dtype=np.uint8)
        label = i % 2
        if label:
            y, x = rng.integers(0, side - 8 - square, 2)  # inside the windows: (40 - 9) // 8 * 8 + 9 = 33 px
            pixels[y : y + square, x : x + square] = 250
        images.append(InMemoryImage(pixels))
        labels.append(label)
    return images, torch.tensor(labels)


def recalibrate_batchnorm(model: torch.nn.Module, images: list[InMemoryImage]) -> None:
    """Running BatchNorm statistics of the final weights (one pass over ``images``). On a flat toy
    background the per-channel variances are tiny, and the running averages lag far behind the
    few fast steps of this test; that lag, not what was learned, would decide the eval-mode result."""
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # cumulative average: after one pass, the statistics of that pass
    with torch.no_grad():
        model.train()(images)
    model.eval()


@pytest.mark.slow
def test_it_learns_a_tiny_separable_problem():
    torch.manual_seed(0)
    model = build_model("bagnet", 2, receptive_field=9, width=4)
    images, labels = square_images(16, seed=0)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(30):
        loss = torch.nn.functional.cross_entropy(model(images).logits, labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    test_images, test_labels = square_images(32, seed=1)
    recalibrate_batchnorm(model, images)
    with torch.no_grad():
        out = model(test_images)
    assert (out.logits.argmax(1) == test_labels).float().mean().item() >= 0.9
    for i in range(1, 32, 2):  # the evidence of every positive peaks where its square is
        amap = out.attention[i].detached().stage1
        assert int(amap.probs.argmax()) in bright_cells(test_images[i], amap)


def bright_cells(image: InMemoryImage, amap) -> set[int]:
    """Cells of ``amap`` whose area holds a pixel of the bright square."""
    ys, xs = np.nonzero(image.pixels[:, :, 0] == 250)
    (top, left), (h, w) = amap.origin, amap.cell
    rows, cols = amap.shape
    cells = set()
    for y, x in zip(ys, xs):
        r, c = int((y - top) // h), int((x - left) // w)
        for dr in (-1, 0, 1):  # a window is wider than its cell: the neighbouring cells see it too
            for dc in (-1, 0, 1):
                if 0 <= r + dr < rows and 0 <= c + dc < cols:
                    cells.add((r + dr) * cols + c + dc)
    return cells


def test_cost_meters_run_and_grow_with_the_image():
    torch.manual_seed(0)
    model = build_model("bagnet", 2, receptive_field=33, width=4).train()
    small = measure_inference(model, random_image(5, 64, 64), "cpu", seed=0, repeats=1, warmup=0)
    large = measure_inference(model, random_image(6, 128, 128), "cpu", seed=0, repeats=1, warmup=0)
    assert model.training  # restored
    for result in (small, large):
        assert result["gflops"] > 0 and result["peak_memory_mb"] > result["parameters_mb"] > 0
        assert result["time_ms"] > 0
    assert large["gflops"] / small["gflops"] > 3.5  # full resolution: cost grows with the area (4x)
    assert large["forward_peak_mb"] > 2 * small["forward_peak_mb"]


@pytest.mark.parametrize(
    "params, key",
    [
        ({"receptive_field": 32}, "receptive_field"),
        ({"width": 0}, "width"),
        ({"scale": 1.5}, "scale"),
        ({"blocks": "2,2,2,2"}, "blocks"),
        ({"pooling": "max"}, "pooling"),
    ],
)
def test_bad_parameters_name_the_key(params, key):
    with pytest.raises(ConfigError) as error:
        build_model("bagnet", 2, **params)
    assert error.value.key == key and key in str(error.value)
