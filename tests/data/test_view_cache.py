"""The HDF5 view cache: round trip against Pillow, lazy image access, atomic writes, version check."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from zoomin.cli.main import main as cli_main
from zoomin.data import view_cache as view_cache_module
from zoomin.data.constructed import ImageRecord, read_constructed, write_constructed
from zoomin.data.view_cache import ViewCache, build_view_cache
from zoomin.errors import InputFileError
from zoomin.image_access import ImageAccess, InMemoryImage, resize_uint8, scale_key, scaled_length

SCALES = [0.1, 0.25]


@pytest.fixture()
def constructed(tmp_path):
    """Images in four modes (RGB, L, RGBA, P), odd sizes, one mask."""
    root = tmp_path / "constructed"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    specs = [("rgb", "RGB", (41, 57)), ("gray", "L", (64, 30)), ("rgba", "RGBA", (33, 33)), ("pal", "P", (50, 70))]
    records = []
    for i, (name, mode, (h, w)) in enumerate(specs):
        channels = {"RGB": 3, "L": 1, "RGBA": 4, "P": 3}[mode]
        array = rng.integers(0, 256, (h, w, channels), dtype=np.uint8).squeeze()
        image = Image.fromarray(array)
        image = image.convert("P") if mode == "P" else image
        image.save(root / "images" / f"{name}.png")
        mask = None
        if name == "rgb":
            mask_array = np.zeros((h, w), dtype=np.uint8)
            mask_array[5:20, 10:40] = 255
            Image.fromarray(mask_array).save(root / "masks" / "rgb.png")
            mask = "masks/rgb.png"
        records.append(ImageRecord(name, f"images/{name}.png", ["a", "b"][i % 2], ["train", "test"][i // 2], mask))
    write_constructed(root, "toy", "image", ["a", "b"], records, source="test")
    return root


def source_rgb(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_round_trip(constructed, tmp_path):
    out = build_view_cache(constructed, SCALES, tmp_path / "views.h5", progress=False)
    dataset = read_constructed(constructed)
    with h5py.File(out, "r") as h5:
        assert h5.attrs["format_version"] == 1
        assert json.loads(h5.attrs["classes"]) == ["a", "b"]
        assert json.loads(h5.attrs["scales"]) == SCALES
        # relative to views.h5, so results/ and resources/ may move together
        assert (out.parent / h5.attrs["constructed"]).resolve() == constructed.resolve()
        assert not Path(h5.attrs["constructed"]).is_absolute()
        assert h5["views/rgb/s0.1"].compression == "gzip"
    cache = ViewCache(out)
    assert cache.index.image_ids == tuple(dataset.image_ids)
    assert cache.index.labels.tolist() == [dataset.label_index(r) for r in dataset.records]
    assert cache.index.splits == tuple(r.split for r in dataset.records)
    assert cache.classes == ("a", "b") and cache.scales == tuple(SCALES) and cache.dataset == "toy"
    assert cache.constructed == constructed.resolve()
    for record in dataset.records:
        pixels = source_rgb(dataset.image_path(record))
        h, w = pixels.shape[:2]
        i = cache.position(record.image_id)
        assert (cache.index.heights[i], cache.index.widths[i]) == (h, w)
        for scale in SCALES:
            expected = resize_uint8(pixels, scaled_length(h, scale), scaled_length(w, scale))
            assert np.array_equal(cache.view_array(record.image_id, scale), expected)


def test_masks(constructed, tmp_path):
    cache = ViewCache(build_view_cache(constructed, SCALES, tmp_path / "views.h5", progress=False))
    assert cache.has_masks
    mask = np.asarray(Image.open(constructed / "masks" / "rgb.png"))
    for scale in SCALES:
        view = cache.mask_view("rgb", scale)
        expected = resize_uint8(mask, scaled_length(41, scale), scaled_length(57, scale))
        assert view.dtype == np.uint8 and np.array_equal(view, expected)
    assert cache.mask_view("gray", 0.1) is None
    assert np.array_equal(cache.image("rgb").mask_view(0.25), cache.mask_view("rgb", 0.25))


def test_image_access_matches_in_memory_image(constructed, tmp_path, monkeypatch):
    cache = ViewCache(build_view_cache(constructed, SCALES, tmp_path / "views.h5", progress=False))
    for image_id in cache.index.image_ids:
        cached = cache.image(image_id)
        assert isinstance(cached, ImageAccess)
        reference = InMemoryImage(source_rgb(constructed / "images" / f"{image_id}.png"))
        assert cached.size == reference.size and cached.channels == 3
        for scale in SCALES + [0.5]:  # 0.5 is not cached: computed from the image
            assert torch.equal(cached.view(scale), reference.view(scale))
        assert torch.equal(cached.region_view(-5, 7, 20, 0.5), reference.region_view(-5, 7, 20, 0.5))
        centres = torch.tensor([[0.0, 0.0], [10.5, 12.0], [30.0, 60.0]])
        assert torch.equal(cached.patches(centres, 9), reference.patches(centres, 9))


def test_cached_views_do_not_decode_the_image(constructed, tmp_path, monkeypatch):
    cache = ViewCache(build_view_cache(constructed, SCALES, tmp_path / "views.h5", progress=False))

    def refuse(path):
        raise AssertionError(f"decoded {path}")

    monkeypatch.setattr(view_cache_module, "load_rgb", refuse)
    image = cache.image("rgb")
    assert image.view(0.1).shape == (3, 4, 6)
    with pytest.raises(AssertionError, match="decoded"):
        image.patches(torch.tensor([[5.0, 5.0]]), 4)


def test_cache_pickles_for_worker_processes(constructed, tmp_path):
    cache = ViewCache(build_view_cache(constructed, SCALES, tmp_path / "views.h5", progress=False))
    copy = pickle.loads(pickle.dumps(cache))
    assert np.array_equal(copy.view_array("gray", 0.25), cache.view_array("gray", 0.25))
    cache.close()
    copy.close()


def test_failed_build_leaves_nothing(constructed, tmp_path, monkeypatch):
    target = tmp_path / "views.h5"

    def fail(*args, **kwargs):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(view_cache_module, "_write_index", fail)
    with pytest.raises(RuntimeError, match="interrupted"):
        build_view_cache(constructed, SCALES, target, progress=False)
    assert not target.exists()
    assert list(tmp_path.glob("*.h5*")) == [] and list(tmp_path.glob(".views*")) == []


def test_version_mismatch_is_refused(constructed, tmp_path):
    path = build_view_cache(constructed, SCALES, tmp_path / "views.h5", progress=False)
    with h5py.File(path, "a") as h5:
        h5.attrs["format_version"] = 0
    with pytest.raises(InputFileError) as error:
        ViewCache(path)
    message = str(error.value)
    assert "views.h5" in message and "format_version 0" in message and "rebuild" in message
    with h5py.File(path, "a") as h5:
        del h5.attrs["format_version"]
    with pytest.raises(InputFileError, match="rebuild"):
        ViewCache(path)


def test_unreadable_or_missing_cache(tmp_path):
    with pytest.raises(InputFileError, match="missing"):
        ViewCache(tmp_path / "nope.h5")
    (tmp_path / "junk.h5").write_text("not hdf5")
    with pytest.raises(InputFileError, match="junk.h5.*not a readable HDF5"):
        ViewCache(tmp_path / "junk.h5")


def test_bad_inputs(constructed, tmp_path):
    with pytest.raises(Exception, match="scales"):
        build_view_cache(constructed, [0.0], tmp_path / "v.h5", progress=False)
    Image.fromarray(np.zeros((10, 10), dtype=np.uint8)).save(constructed / "masks" / "rgb.png")
    with pytest.raises(InputFileError, match="rgb.png.*mask is 10x10"):
        build_view_cache(constructed, SCALES, tmp_path / "v.h5", progress=False)
    assert not (tmp_path / "v.h5").exists()


def test_scale_key():
    assert [scale_key(s) for s in (0.1, 0.25, 1, 0.125)] == ["s0.1", "s0.25", "s1", "s0.125"]


def test_cli_build_views(constructed, tmp_path):
    out = tmp_path / "cli" / "views.h5"
    code = cli_main(["build-views", "--constructed", str(constructed), "--scales", "0.1", "0.2",
                     "--out", str(out), "--no-progress"])
    assert code == 0 and ViewCache(out).scales == (0.1, 0.2)
    assert cli_main(["build-views", "--constructed", str(tmp_path / "nope"), "--scales", "0.1", "--out", str(out)]) == 1


def test_decoded_images_are_kept_within_the_budget(constructed, tmp_path, monkeypatch):
    path = build_view_cache(constructed, SCALES, tmp_path / "views.h5", progress=False)
    decoded = []
    real_load = view_cache_module.load_rgb

    def counting(file):
        decoded.append(file)
        return real_load(file)

    monkeypatch.setattr(view_cache_module, "load_rgb", counting)
    cache = ViewCache(path)
    centre = torch.tensor([[5.0, 5.0]])
    first = cache.image("rgb").patches(centre, 4)
    assert torch.equal(cache.image("rgb").patches(centre, 4), first)  # a fresh CachedImage, no decode
    assert len(decoded) == 1
    tight = ViewCache(path, decoded_budget_bytes=0)
    tight.image("rgb").patches(centre, 4)
    tight.image("rgb").patches(centre, 4)
    assert len(decoded) == 3  # over budget: decoded each time, nothing kept
