"""Per-slide HDF5 cache: layout and attributes, seamless block-wise rendering, atomic writes, bad slides."""

from __future__ import annotations

import argparse
import json

import h5py
import numpy as np
import pytest

from tests.real.fixtures_slides import TUMOUR_POLYGONS, make_flat_tiff, make_slide, make_truncated_tiff
from zoomin.cli.commands import slide_cache as command
from zoomin.data.slide_access import SlideReader
from zoomin.data.slide_cache import build_slide_cache
from zoomin.data.slide_masks import write_mask_tiff
from zoomin.errors import InputFileError


@pytest.fixture(scope="module")
def truth(tmp_path_factory):
    return make_slide(tmp_path_factory.mktemp("cache") / "slide.tif", tumour_polygons=TUMOUR_POLYGONS)


def test_layout_and_attributes(truth, tmp_path):
    mask_path = write_mask_tiff(tmp_path / "mask.tif", truth.tumour[2::4, 2::4])
    out = build_slide_cache(truth.path, tmp_path / "c.h5", [0.125, 1 / 32], tile_size=256, mask_path=mask_path)
    with h5py.File(out, "r") as h5:
        attrs = dict(h5.attrs)
        assert attrs["format_version"] == 1 and attrs["source"] == str(truth.path.resolve())
        assert (attrs["height"], attrs["width"]) == (2048, 2048)
        assert attrs["mpp"] == pytest.approx(0.25)
        assert json.loads(attrs["scales"]) == [0.125, 0.03125]
        assert attrs["level"] == 2 and attrs["downsample"] == 4.0  # coarsest level (ds 4 <= 32)
        view = h5["s0.125"]
        assert view.shape == (256, 256, 3) and view.dtype == np.uint8
        assert view.compression == "gzip" and view.chunks is not None
        assert view.attrs["level"] == 2  # ds 4 <= 8: read from level 2
        assert h5["s0.03125"].shape == (64, 64, 3)
        tissue = h5["tissue_mask"][...]
        assert tissue.dtype == bool and tissue.shape == (64, 64)
        want = truth.tissue[16::32, 16::32]
        assert (tissue & want).sum() / (tissue | want).sum() > 0.9
        coords = h5["coords"][...]
        assert h5["coords"].attrs["tile_size"] == 256 and coords.shape[1] == 2
        assert (coords % 256 == 0).all() and 20 < len(coords) < 64
        assert "mask" in h5 and h5["mask/s0.125"].shape == (256, 256)
        frac = h5["mask/s0.125"][...] / 255.0
        assert frac.sum() * 64 == pytest.approx(truth.tumour.sum(), rel=0.02)


def test_blocks_leave_no_seams(truth, tmp_path):
    a = build_slide_cache(truth.path, tmp_path / "a.h5", [0.3], 256)
    b = build_slide_cache(truth.path, tmp_path / "b.h5", [0.3], 256, block=37)
    with h5py.File(a) as ha, h5py.File(b) as hb:
        assert np.array_equal(ha["s0.3"][...], hb["s0.3"][...])


def test_truncated_tiff_is_refused_and_nothing_written(tmp_path):
    bad = make_truncated_tiff(tmp_path / "cut.tif")
    with pytest.raises(InputFileError) as error:
        build_slide_cache(bad, tmp_path / "cut.h5", [0.1], 256)
    assert "cut.tif" in str(error.value)
    assert not any(p.suffix in (".h5", ".tmp") for p in tmp_path.iterdir())


def test_not_a_slide_names_the_file(tmp_path):
    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"II*\x00" + b"\x00" * 100)
    with pytest.raises(InputFileError, match="junk.tif"):
        build_slide_cache(junk, tmp_path / "j.h5", [0.1], 256)
    with pytest.raises(InputFileError, match="not found"):
        build_slide_cache(tmp_path / "missing.tif", tmp_path / "m.h5", [0.1], 256)


def test_non_pyramidal_tiff_refused_beyond_the_limit(tmp_path):
    flat = make_flat_tiff(tmp_path / "flat.tif", size=1024)
    with pytest.raises(InputFileError, match="not pyramidal") as error:
        build_slide_cache(flat, tmp_path / "f.h5", [0.1], 256, max_read_pixels=512 * 512)
    assert "flat.tif" in str(error.value)
    assert not (tmp_path / "f.h5").exists()
    build_slide_cache(flat, tmp_path / "f.h5", [0.1], 256)  # small enough to read whole
    reader = SlideReader(flat, max_read_pixels=512 * 512)
    with pytest.raises(InputFileError, match="Is it pyramidal"):
        reader.render_view(0.1)


def test_command_line(truth, tmp_path):
    parser = argparse.ArgumentParser()
    command.register(parser.add_subparsers(dest="command"))
    out = tmp_path / "cli.h5"
    args = parser.parse_args(
        ["slide-cache", "--slide", str(truth.path), "--out", str(out), "--scales", "0.0625", "--tile-size", "512"]
    )
    args.func(args)
    with h5py.File(out) as h5:
        assert h5["s0.0625"].shape == (128, 128, 3) and h5["coords"].attrs["tile_size"] == 512


def test_tissue_helpers():
    from scipy import ndimage

    from zoomin.data.tissue import hsv_saturation, otsu_threshold, tissue_mask

    rgb = np.zeros((40, 40, 3), np.uint8)
    rgb[...] = (238, 236, 240)
    rgb[10:30, 10:30] = (220, 120, 190)
    rgb[0, 0] = (200, 50, 50)  # salt: removed by the 7x7 median
    sat = hsv_saturation(rgb)
    assert sat[15, 15] == round((220 - 120) / 220 * 255) and sat[35, 35] < 10
    threshold = otsu_threshold(sat)
    assert sat[35, 35] <= threshold < sat[15, 15]
    mask, used = tissue_mask(rgb)
    assert used == max(threshold, 8.0) and mask[13:27, 13:27].all() and not mask[0, 0]
    assert 380 <= mask.sum() <= 400 and not mask[:10].any()  # corners rounded, like a median
    # majority vote on the thresholded mask == median filter of it
    noisy = np.random.default_rng(0).random((64, 64)) < 0.5
    median = ndimage.median_filter(noisy.astype(np.uint8), size=7) > 0
    votes = ndimage.uniform_filter(noisy.astype(np.float32), size=7) > 0.5
    assert np.array_equal(median, votes)
    blank = np.full((20, 20, 3), 240, np.uint8)
    assert not tissue_mask(blank)[0].any()  # Otsu on a blank slide must not invent tissue
