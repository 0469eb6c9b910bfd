"""Camelyon16: reference.csv with/without header, checksums, download plan + loopback download, construction."""

from __future__ import annotations

import numpy as np
import pytest

from tests.real.fixtures_http import serve
from tests.real.fixtures_slides import make_camelyon_raw, md5, write_reference_csv
from zoomin.data.constructed import read_constructed
from zoomin.data.slide_access import SlideImage
from zoomin.data.slide_cache import build_slide_cache
from zoomin.data.slide_masks import read_mask
from zoomin.data.sources import camelyon16, download_dataset
from zoomin.errors import InputFileError


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    root = tmp_path_factory.mktemp("camelyon16") / "CAMELYON16"
    return root, make_camelyon_raw(root)


@pytest.mark.parametrize("header", [True, False])
def test_reference_with_and_without_header(tmp_path, header):
    path = write_reference_csv(tmp_path / "reference.csv", [("Test_001", "Tumor"), ("Test_002", "Normal")], header)
    assert camelyon16.read_reference(path) == {"test_001": "Tumor", "test_002": "Normal"}


def test_reference_bad_class_names_the_file(tmp_path):
    path = tmp_path / "reference.csv"
    path.write_text("Test_001,Maybe,,\n")
    with pytest.raises(InputFileError, match="reference.csv.*Maybe"):
        camelyon16.read_reference(path)


def test_checksums_variants(tmp_path):
    path = tmp_path / "checksums.md5"
    path.write_text(
        "0123456789abcdef0123456789abcdef  CAMELYON16/images/normal_001.tif\n"
        "0123456789abcdef0123456789abcdee *./annotations/tumor_001.xml\n\n"
    )
    assert camelyon16.read_checksums(path) == {
        "images/normal_001.tif": "0123456789abcdef0123456789abcdef",
        "annotations/tumor_001.xml": "0123456789abcdef0123456789abcdee",
    }
    path.write_text("not a checksum line\n")
    with pytest.raises(InputFileError, match="checksums.md5.*line 1"):
        camelyon16.read_checksums(path)


def test_download_plan_and_loopback_download(raw, tmp_path):
    root, _ = raw
    sums = camelyon16.read_checksums(root / "checksums.md5")
    plan = camelyon16.download_plan(sums, "https://x/CAMELYON16", splits=["train"], limit=1)
    assert [item.key for item in plan] == [
        "images/normal_001.tif",
        "images/tumor_001.tif",
        "annotations/tumor_001.xml",
        "masks/tumor_001_mask.tif",
    ]
    assert plan[1].url == "https://x/CAMELYON16/images/tumor_001.tif" and plan[1].md5 == md5(root / plan[1].key)
    with serve() as server:
        served = {}
        for path in root.rglob("*"):
            if path.is_file():
                key = path.relative_to(root).as_posix()
                served[key] = server.add(f"CAMELYON16/{key}", path.read_bytes())
        out = tmp_path / "raw"
        params = {"base_url": f"{server.url}/CAMELYON16", "limit": "1", "workers": "1"}  # as from --param
        download_dataset("camelyon16", out, params)
    fetched = sorted(key for key, behaviour in served.items() if behaviour.requests)
    assert fetched == sorted(
        ["checksums.md5", "evaluation/reference.csv", "images/normal_001.tif", "images/tumor_001.tif",
         "annotations/tumor_001.xml", "masks/tumor_001_mask.tif", "images/test_001.tif",
         "annotations/test_001.xml", "masks/test_001_mask.tif"]
    )
    records = camelyon16.construct(out, tmp_path / "built", val_fraction=0, mask_downsample=4)
    assert {(r["image_id"], r["label"], r["split"]) for r in records} == {
        ("normal_001", "negative", "train"), ("tumor_001", "positive", "train"), ("test_001", "positive", "test")
    }


def test_construct(raw, tmp_path):
    root, truths = raw
    out = tmp_path / "constructed"
    camelyon16.construct(root, out, val_fraction=0.34, seed=1, mask_downsample=4)
    dataset = read_constructed(out)
    assert dataset.kind == "slide" and dataset.classes == ("negative", "positive") and dataset.mpp == 0.25
    by_id = {r.image_id: r for r in dataset.records}
    assert sorted(by_id) == sorted(truths)
    assert by_id["test_001"].label == "positive" and by_id["test_002"].label == "negative"
    assert all(by_id[f"normal_00{i}"].label == "negative" for i in (1, 2, 3))
    assert all(by_id[f"tumor_00{i}"].label == "positive" for i in (1, 2))
    splits = {r.image_id: r.split for r in dataset.records}
    assert {splits["test_001"], splits["test_002"]} == {"test"}
    train_val = [s for k, s in splits.items() if not k.startswith("test")]
    assert train_val.count("val") == 2  # one per class (stratified)
    for image_id, truth in truths.items():
        mask = read_mask(out / by_id[image_id].mask)
        assert mask.shape == (256, 256)  # level 2 (downsample 4) of a 1024 slide
        assert np.array_equal(mask, truth.tumour[2::4, 2::4])
    assert (out / "images" / "tumor_001.tif").stat().st_ino == (root / "images" / "tumor_001.tif").stat().st_ino
    again = camelyon16.construct(root, tmp_path / "again", val_fraction=0.34, seed=1, mask_downsample=4)
    assert [r["split"] for r in again] == [by_id[r["image_id"]].split for r in again]

    # The constructed slides feed the slide cache and the model's image access.
    record = by_id["tumor_001"]
    cache = build_slide_cache(out / record.path, tmp_path / "tumor_001.h5", [1 / 16], 256, mask_path=out / record.mask)
    image = SlideImage(out / record.path, cache)
    assert image.view(1 / 16).shape == (3, 64, 64) and image.tile_mask(256).any()


def test_construct_from_mask_tifs_and_limits(raw, tmp_path):
    root, truths = raw
    records = camelyon16.construct(root, tmp_path / "o", masks="tif", limit=1, mask_downsample=4, link="symlink")
    assert [r["image_id"] for r in records] == ["normal_001", "tumor_001", "test_001"]
    mask = read_mask(tmp_path / "o" / "masks" / "tumor_001.tif")
    truth = truths["tumor_001"].tumour[2::4, 2::4]
    assert (mask != truth).mean() < 0.002  # box-averaged pyramid vs centre sampling: edges only
    assert (tmp_path / "o" / "images" / "normal_001.tif").is_symlink()


def test_missing_reference_is_reported(raw, tmp_path):
    root, _ = raw
    partial = tmp_path / "partial"
    (partial / "images").mkdir(parents=True)
    (partial / "images" / "test_001.tif").symlink_to(root / "images" / "test_001.tif")
    with pytest.raises(InputFileError, match="reference.csv"):
        camelyon16.construct(partial, tmp_path / "o")
    with pytest.raises(InputFileError, match="images"):
        camelyon16.construct(tmp_path / "empty", tmp_path / "o2")


def test_construct_command(raw, tmp_path):
    from zoomin.cli.main import main

    root, _ = raw
    args = ["construct", "--source", "camelyon16", "--raw", str(root), "--out", str(tmp_path / "o"), "--seed", "2"]
    args += ["--param", "limit=1", "--param", "mask_downsample=4", "--param", "masks=xml"]
    assert main(args) == 0
    assert read_constructed(tmp_path / "o").seed == 2
