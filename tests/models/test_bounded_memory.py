"""Streamed inference (zoomin.models.bounded_memory): the same result as the whole-view computation.

Tolerance: the streamed stage-1 tile logits must equal the whole-view ones within 1e-5 absolute
(float32; a convolution over a band may sum in another order than over the whole view, which
moves the last bits). On the CPU the draws are the same random numbers in the same order, so the
sampled sub-tiles are identical and the logits agree within the same 1e-5.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tests.real.fixtures_slides import make_slide
from zoomin.data.slide_access import SlideImage
from zoomin.data.slide_cache import build_slide_cache
from zoomin.image_access import ImageAccess, InMemoryImage, view_shape
from zoomin.models import build_model
from zoomin.models.attention import AttentionNet
from zoomin.models.bounded_memory import banded_logits, receptive_halo, row_slices

pytestmark = pytest.mark.usefixtures("single_thread")

TOLERANCE = 1e-5


def random_image(seed: int, height: int, width: int) -> InMemoryImage:
    return InMemoryImage(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def zoomin(**overrides) -> nn.Module:
    torch.manual_seed(0)
    params = {"tile": 16, "subtile": 5, "s1": 0.25, "s2": 0.5, "n": 6, **overrides}
    return build_model("zoomin", 3, **params).eval()


class BandSpy(ImageAccess):
    """An ImageAccess that serves its view only by bands of rows and records each band read."""

    def __init__(self, image):
        self.image = image
        self.bands: list[tuple[float, int, int]] = []

    size = property(lambda self: self.image.size)
    channels = property(lambda self: self.image.channels)

    def view(self, scale):
        raise AssertionError("the streamed path must not read a whole view")

    def view_rows(self, scale, top, stop):
        self.bands.append((scale, top, stop))
        return self.image.view(scale)[:, top:stop]

    def region_view(self, top, left, size, scale):
        return self.image.region_view(top, left, size, scale)

    def patches(self, centres, size):
        return self.image.patches(centres, size)


def whole_tile_logits(model, image):
    with torch.enable_grad():  # autograd on: the whole-view path
        return model.tile_logits([image])[0].detach()


def test_halo_of_the_attention_net_is_its_three_convolutions():
    assert receptive_halo(AttentionNet()) == 3
    assert receptive_halo(nn.Sequential(nn.Conv2d(3, 4, 5, padding=2), nn.ReLU(), nn.Conv2d(4, 1, 3, padding=2, dilation=2))) == 4
    for bad in (nn.Conv2d(3, 1, 3, stride=2, padding=1), nn.Conv2d(3, 1, 3), nn.MaxPool2d(2), nn.BatchNorm2d(3)):
        with pytest.raises(ValueError, match="cannot stream"):
            receptive_halo(nn.Sequential(bad))


# sizes: a multiple of the tile, zero-padded border tiles, and a view larger than the tile grid
# (tile 18 at s1 0.25 -> 4-px tiles for 4.5 px of view: the view is cropped to the grid)
@pytest.mark.parametrize(("height", "width", "tile"), [(64, 64, 16), (70, 50, 16), (150, 47, 16), (144, 90, 18)])
@pytest.mark.parametrize("budget", [1, 100, 1 << 16])
def test_streamed_tile_logits_equal_the_whole_view_logits(height, width, tile, budget):
    model = zoomin(tile=tile)
    image = random_image(height + width, height, width)
    spy = BandSpy(image)
    model.chunk_pixels = budget
    with torch.no_grad():
        streamed = model.tile_logits([spy])[0]
    whole = whole_tile_logits(model, image)
    assert streamed.shape == whole.shape == model.grid(image)
    assert torch.allclose(streamed, whole, atol=TOLERANCE, rtol=0)
    view_h = view_shape(image.size, model.s1)[0]
    rows = model.grid(image)[0]
    if budget == 1:  # one tile row per band, each read with at most 3 rows of halo on either side
        assert len(spy.bands) == rows
        assert all(stop - top <= model.pool + 6 for _, top, stop in spy.bands)
    covered = sorted({y for _, top, stop in spy.bands for y in range(top, stop)})
    assert covered == list(range(min(view_h, rows * model.pool)))


def test_banded_logits_without_pooling_equal_the_attention_map():
    torch.manual_seed(1)
    net = AttentionNet("relu").eval()
    image = random_image(3, 61, 45)
    with torch.no_grad():
        whole = net(image.view(0.5)[None])[0]
        banded = banded_logits(net, image, 0.5, tuple(whole.shape), pool=1, budget=50)
    assert torch.allclose(banded, whole, atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("sampling", ["sample", "topk"])
@pytest.mark.parametrize("feature", ["lenet", "resnet16"])
def test_streamed_forward_equals_the_whole_batch_forward(sampling, feature):
    model = zoomin(feature=feature)
    images = [random_image(i, 60 + 9 * i, 50) for i in range(3)]
    with torch.enable_grad():
        whole = model(images, torch.Generator().manual_seed(5), sampling)
    model.chunk_pixels = 40  # every band, stage-2 view and sub-tile in its own chunk
    with torch.no_grad():
        streamed = model(images, torch.Generator().manual_seed(5), sampling)
    assert torch.allclose(streamed.logits, whole.logits.detach(), atol=TOLERANCE, rtol=0)
    assert torch.allclose(streamed.entropy, whole.entropy.detach(), atol=TOLERANCE, rtol=0)
    for a, b in zip(streamed.attention, whole.attention):
        assert torch.equal(a.sampled.centres, b.sampled.centres)
        assert torch.equal(a.counts, b.counts)
        assert set(a.stage2) == set(b.stage2)
        for tile in a.stage2:
            assert torch.allclose(a.stage2[tile].probs, b.stage2[tile].probs.detach(), atol=TOLERANCE)


def test_contrastive_draws_stream_too():
    model = zoomin()
    images = [random_image(7, 64, 48)]
    with torch.enable_grad():
        whole = model.represent(images, torch.Generator().manual_seed(2), contrast=True)
    model.chunk_pixels = 40
    with torch.no_grad():
        streamed = model.represent(images, torch.Generator().manual_seed(2), contrast=True)
    assert torch.allclose(streamed.features, whole.features.detach(), atol=TOLERANCE, rtol=0)
    assert torch.equal(streamed.attention[0].sampled.centres, whole.attention[0].sampled.centres)


def test_streaming_only_at_inference():
    model = zoomin()
    assert not model.train().streams()
    with torch.no_grad():
        assert not model.train().streams()  # BatchNorm in training mode needs the whole batch
        assert model.eval().streams()
    assert not model.eval().streams()  # autograd on


def test_feature_chunks_read_only_a_chunk_of_subtiles_at_a_time():
    model = zoomin(tile=32, subtile=16, s1=0.125, s2=0.25, n=12)
    spy = BandSpy(random_image(11, 96, 96))
    sizes = []
    patches = spy.patches
    spy.patches = lambda centres, size: sizes.append(len(centres)) or patches(centres, size)
    model.chunk_pixels = 2 * 16 * 16
    with torch.no_grad():
        model([spy], torch.Generator().manual_seed(0))
    assert sizes and max(sizes) <= 2 and sum(sizes) >= 3


def test_subtile_draws_go_a_chunk_of_tiles_at_a_time(monkeypatch):
    """At inference the stage-2 sampler ranks the positions of a chunk of drawn tiles at a time (their
    Gumbel keys for every opened tile of a slide took 200 MB at 100,000²); the draws are those of one
    call (test_streamed_forward_equals_the_whole_batch_forward)."""
    from zoomin.models import stages

    model = zoomin(tile=32, subtile=16, s1=0.125, s2=0.25, n=12)
    rows = []
    draw = stages.draw_positions
    monkeypatch.setattr(stages, "draw_positions", lambda probs, *args: rows.append(len(probs)) or draw(probs, *args))
    model.chunk_pixels = 2 * model.view2 * model.view2  # two tiles' positions per chunk
    with torch.no_grad():
        model([random_image(11, 96, 96)], torch.Generator().manual_seed(0))
    assert len(rows) >= 2 and max(rows) <= 2


def test_chunks_split_by_the_pixel_budget():
    assert row_slices(5, 10, 25) == [slice(0, 2), slice(2, 4), slice(4, 5)]
    assert row_slices(3, 100, 10) == [slice(0, 1), slice(1, 2), slice(2, 3)]  # at least one each
    assert row_slices(3, 100, None) == [slice(0, 3)]  # training: every row at once
    assert row_slices(0, 10, 25) == []


def test_slide_views_stream_from_the_cache_and_from_the_pyramid(tmp_path):
    slide = make_slide(tmp_path / "slide.tif", size=1024, levels=3)
    cache = build_slide_cache(slide.path, tmp_path / "slide.h5", [1 / 16], tile_size=128)
    model = zoomin(tile=128, subtile=16, s1=1 / 16, s2=1 / 8, n=4)
    model.chunk_pixels = 8 * 64  # one tile row (8 view rows of 64 px) per band
    with SlideImage(slide.path, cache) as cached, SlideImage(slide.path) as uncached:
        whole = whole_tile_logits(model, cached)
        for image in (cached, uncached):
            assert torch.equal(image.view_rows(1 / 16, 10, 30), cached.view(1 / 16)[:, 10:30])
            with torch.no_grad():
                streamed = model.tile_logits([image])[0]
            assert torch.allclose(streamed, whole, atol=TOLERANCE, rtol=0)
        assert uncached.read_stats[0] == 0  # the view came from a reduced level, band by band
