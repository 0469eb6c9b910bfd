"""SlideImage: views, region views and patches match the known pixels; level 0 is never read whole."""

from __future__ import annotations

import pickle

import openslide
import pytest
import torch

from tests.real.fixtures_slides import TUMOUR_POLYGONS, make_slide
from zoomin.data.slide_access import SlideImage
from zoomin.data.slide_cache import build_slide_cache
from zoomin.image_access import ImageAccess, InMemoryImage

SCALES = [0.25, 1 / 32]


@pytest.fixture(scope="module")
def slide(tmp_path_factory):
    root = tmp_path_factory.mktemp("slide")
    truth = make_slide(root / "tumor_001.tif", tumour_polygons=TUMOUR_POLYGONS)
    cache = build_slide_cache(truth.path, root / "tumor_001.h5", SCALES, tile_size=256)
    return truth, cache


class Spy:
    """Wraps an OpenSlide handle's read_region and records (level, width, height) of every call."""

    def __init__(self, image: SlideImage):
        self.calls: list[tuple[int, int, int]] = []
        handle = image.reader.slide
        original = handle.read_region

        def read_region(location, level, size):
            self.calls.append((level, size[0], size[1]))
            return original(location, level, size)

        handle.read_region = read_region

    def level0(self) -> list[tuple[int, int]]:
        return [(w, h) for level, w, h in self.calls if level == 0]


def test_fixture_is_a_generic_tiff_pyramid(slide):
    truth, _ = slide
    assert openslide.OpenSlide.detect_format(str(truth.path)) == "generic-tiff"
    handle = openslide.OpenSlide(str(truth.path))
    assert handle.level_count == 3 and handle.level_downsamples == (1.0, 2.0, 4.0)
    assert float(handle.properties["openslide.mpp-x"]) == pytest.approx(0.25)


def test_implements_image_access(slide):
    truth, cache = slide
    image = SlideImage(truth.path, cache)
    assert isinstance(image, ImageAccess)
    assert image.size == (2048, 2048) and image.channels == 3


@pytest.mark.parametrize("scale", [0.25, 1 / 32, 0.2])
def test_views_match_the_pixels(slide, scale):
    truth, cache = slide
    image = SlideImage(truth.path, cache)
    spy = Spy(image)
    got, want = image.view(scale), InMemoryImage(truth.pixels).view(scale)
    assert got.shape == want.shape and got.dtype == torch.float32
    assert 0 <= got.min() and got.max() <= 1
    diff = (got - want).abs()
    assert diff.mean() < 0.01 and diff.max() < 0.25  # pyramid level vs exact box filter
    assert not spy.level0()  # cached or rendered from a coarser level
    assert (spy.calls == []) == (scale in SCALES)  # cached scales do not touch the slide


def test_region_views_match_and_pad_with_zeros(slide):
    truth, cache = slide
    image, ref = SlideImage(truth.path, cache), InMemoryImage(truth.pixels)
    spy = Spy(image)
    for top, left, size, scale in [(0, 0, 512, 0.25), (1000, 900, 300, 0.1), (600, 1200, 512, 0.5)]:
        got, want = image.region_view(top, left, size, scale), ref.region_view(top, left, size, scale)
        assert got.shape == want.shape
        assert (got - want).abs().mean() < 0.01
    assert not spy.level0()
    got = image.region_view(-100, 1900, 400, 1.0)  # exact at full resolution, zero outside
    assert torch.equal(got, ref.region_view(-100, 1900, 400, 1.0))
    assert got[:, :100].abs().max() == 0 and got[:, :, 148:].abs().max() == 0


@pytest.mark.parametrize("size", [27, 100, 224])
def test_patches_are_exact_and_read_only_their_pixels(slide, size):
    truth, cache = slide
    image = SlideImage(truth.path, cache)
    spy = Spy(image)
    centres = torch.tensor([[100, 100], [1024.5, 1000], [0, 0], [2047, 2047], [740, 640]])
    got = image.patches(centres, size)
    assert torch.equal(got, InMemoryImage(truth.pixels).patches(centres, size))
    assert spy.level0() == [(size, size)] * len(centres)
    assert image.read_stats[0] == len(centres) * size * size


def test_one_zoom_in_pass_reads_a_sliver_of_level_0(slide):
    truth, cache = slide
    image = SlideImage(truth.path, cache)
    spy = Spy(image)
    image.view(1 / 32)
    for top, left in [(512, 512), (1024, 1024), (512, 1024)]:
        image.region_view(top, left, 512, 1 / 8)
    centres = torch.randint(0, 2048, (100, 2), generator=torch.Generator().manual_seed(0))
    image.patches(centres, 27)
    assert max(w * h for w, h in spy.level0()) == 27 * 27
    assert image.read_stats[0] / (2048 * 2048) < 0.02


def test_tile_mask_marks_tissue_tiles(slide):
    truth, cache = slide
    image = SlideImage(truth.path, cache)
    mask = image.tile_mask(256)
    assert mask.shape == (8, 8) and mask.dtype == torch.bool
    tiles = truth.tissue.reshape(8, 256, 8, 256)
    assert mask[torch.from_numpy(tiles.all(axis=(1, 3)))].all()  # all-tissue tiles are kept
    assert not mask[torch.from_numpy(~tiles.any(axis=(1, 3)))].any()  # pure background is dropped
    # Without the cache (computed on the fly) and for another tile size, the same rule holds.
    uncached = SlideImage(truth.path)
    assert uncached.tile_mask(256).float().sub(mask.float()).abs().sum() <= 2
    assert image.tile_mask(300).shape == (7, 7)


def test_pickles_without_handles(slide):
    truth, cache = slide
    image = SlideImage(truth.path, cache)
    before = image.patches(torch.tensor([[500, 500]]), 50)
    clone = pickle.loads(pickle.dumps(image))
    assert torch.equal(clone.patches(torch.tensor([[500, 500]]), 50), before)
    image.close()


def test_reader_views_use_image_access_geometry(slide):
    """The slide reader and cache size and name their views with image_access's one rule."""
    from zoomin.data import slide_access, slide_cache, slide_reader
    from zoomin.image_access import scale_key, scaled_length

    truth, _ = slide
    reader = slide_reader.SlideReader(truth.path)
    try:
        for scale in (0.3, 0.1, 1 / 32, 1e-6):
            side = scaled_length(2048, scale)
            assert reader.render_view(scale).shape[:2] == (side, side)
    finally:
        reader.close()
    assert not hasattr(slide_reader, "view_side") and not hasattr(slide_reader, "scale_key")
    assert slide_cache.scale_key is scale_key and slide_access.scale_key is scale_key
    for length in (1, 27, 2048, 50_000, 99_999):
        for scale in (1.0, 0.5, 0.3, 0.1, 1 / 32, 1e-6):
            assert scaled_length(length, scale) == max(1, int(round(length * scale)))


def test_slide_cache_job_does_not_import_torch():
    """Building a slide cache is a job of its own; torch (seconds to import) is not needed there."""
    import subprocess
    import sys

    code = "import sys, zoomin.cli.commands.slide_cache, zoomin.data.slide_cache; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
