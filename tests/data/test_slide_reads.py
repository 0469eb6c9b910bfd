"""A slide's patches read by several threads: the same pixels, in the order asked, counted once;
an OpenSlide error closes the handle only once no thread uses it; the default follows torch's threads."""

from __future__ import annotations

import time

import openslide
import pytest
import torch

from tests.real.fixtures_slides import make_slide
from zoomin.data.slide_access import MAX_READ_WORKERS, SlideImage
from zoomin.errors import InputFileError
from zoomin.image_access import InMemoryImage

# Inside, across tile borders, on the corners and edges (zero-padded outside the slide).
CENTRES = torch.tensor([[100, 100], [1024.5, 1000], [0, 0], [2047, 2047], [740, 640], [255, 257], [2047, 0],
                        [1500, 300], [64, 1900], [1023, 1023]])


@pytest.fixture(scope="module")
def truth(tmp_path_factory):
    return make_slide(tmp_path_factory.mktemp("reads") / "slide.tif")


@pytest.mark.parametrize("workers", [1, 3, 8])
def test_threads_read_the_known_pixels_in_order(truth, workers):
    with SlideImage(truth.path, read_workers=workers) as image:
        got = image.patches(CENTRES, 50)
        assert torch.equal(got, InMemoryImage(truth.pixels).patches(CENTRES, 50))
        assert image.read_stats == {0: len(CENTRES) * 50 * 50}


def test_the_order_is_kept_when_the_first_read_ends_last(truth):
    with SlideImage(truth.path, read_workers=4) as image:
        region = image.reader._region
        finished = []

        def slow_first(level, top, left, height, width):
            if (top, left) == (75, 75):  # the first centre's patch
                time.sleep(0.2)
            pixels = region(level, top, left, height, width)
            finished.append((top, left))
            return pixels

        image.reader._region = slow_first
        got = image.patches(CENTRES, 50)
    assert finished.index((75, 75)) > finished.index((1000, 975))  # the second patch was read before the first
    assert torch.equal(got, InMemoryImage(truth.pixels).patches(CENTRES, 50))


def test_an_openslide_error_names_the_file_and_closes_the_handle_after_every_read(truth):
    image = SlideImage(truth.path, read_workers=4)
    handle = image.reader.slide
    original_read, original_close = handle.read_region, handle.close
    calls, closed, reads_after_close = [], [], []

    def failing(location, level, size):
        calls.append(location)
        if closed:
            reads_after_close.append(location)
        if len(calls) == 3:
            raise openslide.OpenSlideError("TIFFReadEncodedTile failed")
        time.sleep(0.01)  # the other threads are still reading when the error comes
        return original_read(location, level, size)

    handle.read_region = failing
    handle.close = lambda: closed.append(True) or original_close()
    with pytest.raises(InputFileError, match="slide.tif"):
        image.patches(CENTRES, 50)
    assert closed and not reads_after_close and len(calls) > 3
    assert image.reader._slide is None and not image.read_stats
    assert torch.equal(image.patches(CENTRES[:2], 50), InMemoryImage(truth.pixels).patches(CENTRES[:2], 50))


@pytest.mark.parametrize(("torch_threads", "expected"), [(1, 1), (3, 3), (64, MAX_READ_WORKERS)])
def test_the_default_reads_with_torchs_threads(truth, monkeypatch, torch_threads, expected):
    monkeypatch.setattr(torch, "get_num_threads", lambda: torch_threads)
    with SlideImage(truth.path) as image:
        asked = []
        read_many = image.reader.read_many
        image.reader.read_many = lambda level, boxes, workers: asked.append(workers) or read_many(level, boxes, workers)
        image.patches(CENTRES, 16)
    assert asked == [expected]


def test_the_uint8_readers_give_the_tensor_readers_pixels(truth):
    """What the batched models read (patch_arrays, region_array) is what patches and region_view give."""
    with SlideImage(truth.path, read_workers=2) as image:
        arrays = image.patch_arrays(CENTRES.numpy(), 50)
        assert arrays.dtype.name == "uint8" and arrays.shape == (len(CENTRES), 50, 50, 3)
        assert torch.equal(torch.from_numpy(arrays).permute(0, 3, 1, 2).float().div_(255.0), image.patches(CENTRES, 50))
        assert (arrays == InMemoryImage(truth.pixels).patch_arrays(CENTRES, 50)).all()
        region = image.region_array(512, 256, 512, 0.25)
        assert region.shape == (128, 128, 3)
        assert torch.equal(torch.from_numpy(region).permute(2, 0, 1).float().div_(255.0),
                           image.region_view(512, 256, 512, 0.25))
