"""fMoW 10-class subset: manifest, seeded selection, download of only the subset, construction."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from tests.real.fixtures_http import serve
from tests.real.fixtures_images import corrupt, fmow_files, fmow_key, manifest_bytes, write_files
from zoomin.cli.main import main
from zoomin.data.constructed import read_constructed
from zoomin.data.sources import construct_dataset, fmow
from zoomin.errors import InputFileError

CLASSES = ["airport", "barn", "crop_field"]
TRAIN = [("train", c, i, v) for c in CLASSES + ["zoo"] for i in range(3) for v in range(2)]  # 18 + 6
VAL = [("val", c, i, 0) for c in CLASSES + ["zoo"] for i in range(2)]  # 6 + 2
FILES = fmow_files(TRAIN + VAL)
EXTRA_KEYS = [fmow_key("train", "airport", 0, 0, "_msrgb.jpg"), fmow_key("seq", "airport", 9, 0)]
PARAMS = {"classes": ",".join(CLASSES), "n_train": "10", "seed": "3"}


def test_selection_is_seeded_and_restricted():
    keys = list(FILES) + EXTRA_KEYS
    subset = fmow.select_subset(keys, CLASSES, n_train=10, seed=3)
    train = [k for k, _, split in subset if split == "train"]
    test = [k for k, _, split in subset if split == "test"]
    assert len(train) == 10 and len(test) == 6
    assert all(k.endswith("_rgb.jpg") and k.split("/")[1] in CLASSES for k in train + test)
    assert subset == fmow.select_subset(list(reversed(keys)), CLASSES, n_train=10, seed=3)
    assert train != [k for k, _, s in fmow.select_subset(keys, CLASSES, n_train=10, seed=4) if s == "train"]
    everything = fmow.select_subset(keys, CLASSES, n_train=1500, seed=0)
    assert sum(s == "train" for _, _, s in everything) == 18


def test_download_fetches_only_the_subset_then_construct(tmp_path):
    with serve() as server:
        served = {key: server.add(f"fmow-rgb/{key}", data) for key, data in FILES.items()}
        server.add("fmow-rgb/manifest.json.bz2", manifest_bytes(list(FILES) + EXTRA_KEYS))
        raw = tmp_path / "raw"
        args = ["download-dataset", "--dataset", "fmow", "--out", str(raw), "--param", f"base_url={server.url}/fmow-rgb"]
        args += [item for key, value in PARAMS.items() for item in ("--param", f"{key}={value}")]
        assert main(args) == 0
    fetched = {key for key, behaviour in served.items() if behaviour.requests}
    assert len(fetched) == 2 * 16  # jpg + json of 10 train + 6 val images
    assert not any("/zoo/" in key for key in fetched)
    assert json.loads((raw / ".complete").read_text())["dataset"] == "fmow"

    construct_dataset("fmow", raw, tmp_path / "out", params=PARAMS)
    dataset = read_constructed(tmp_path / "out")
    assert dataset.classes == tuple(CLASSES) and dataset.seed == 3
    splits = [r.split for r in dataset.records]
    assert splits.count("train") == 10 and splits.count("test") == 6
    for record in dataset.records:
        assert record.image_id.split("_")[0] in ("train", "val")
        assert record.image_id.split("_", 1)[1].startswith(record.label)
    # id 1 has a single dict box [5, 6, 10, 8]; id 0/2 a list of two boxes
    record = dataset.record("val_airport_1_0")
    mask = np.asarray(Image.open(dataset.mask_path(record)))
    assert mask.shape == (48, 64) and (mask > 0).sum() == 10 * 8 and mask[6, 5] == 255
    record = dataset.record("val_barn_0_0")
    assert (np.asarray(Image.open(dataset.mask_path(record))) > 0).sum() == 10 * 8 + 4 * 4


def test_construct_without_manifest_from_a_local_copy(tmp_path):
    raw = write_files(tmp_path / "raw", FILES)
    records = fmow.construct(raw, tmp_path / "out", classes=CLASSES, n_train=1500, masks=False)
    assert sum(r["split"] == "train" for r in records) == 18
    assert sum(r["split"] == "test" for r in records) == 6
    assert "mask" not in records[0]


def test_bad_metadata_and_images_name_the_file(tmp_path):
    raw = write_files(tmp_path / "raw", FILES)
    meta = raw / fmow_key("val", "barn", 1, 0, "_rgb.json")
    meta.write_text(json.dumps({"gsd": 0.5}))
    with pytest.raises(InputFileError, match="barn_1_0_rgb.json.*bounding_boxes"):
        fmow.construct(raw, tmp_path / "out", classes=CLASSES)
    meta.write_text("{not json")
    with pytest.raises(InputFileError, match="barn_1_0_rgb.json.*JSON"):
        fmow.construct(raw, tmp_path / "out", classes=CLASSES)
    write_files(raw, FILES)
    corrupt(raw / fmow_key("val", "crop_field", 0, 0))
    with pytest.raises(InputFileError, match="crop_field_0_0_rgb.jpg.*decoded"):
        fmow.construct(raw, tmp_path / "out", classes=CLASSES)
    assert not (tmp_path / "out").exists()


def test_subset_image_missing_or_bad_manifest(tmp_path):
    raw = write_files(tmp_path / "raw", FILES)
    (raw / "manifest.json.bz2").write_bytes(manifest_bytes(list(FILES) + [fmow_key("val", "barn", 7, 0)]))
    with pytest.raises(InputFileError, match="barn_7_0_rgb.jpg.*download-dataset"):
        fmow.construct(raw, tmp_path / "out", classes=CLASSES)
    (raw / "manifest.json.bz2").write_bytes(b"BZh9 garbage")
    with pytest.raises(InputFileError, match="manifest.json.bz2"):
        fmow.construct(raw, tmp_path / "out", classes=CLASSES)


def test_manifest_as_object_of_lists_with_prefix(tmp_path):
    import bz2

    path = tmp_path / "manifest.json.bz2"
    path.write_bytes(bz2.compress(json.dumps({"a": ["fmow-rgb/train/x/x_1/x_1_0_rgb.jpg"], "b": []}).encode()))
    assert fmow.read_manifest(path) == ["train/x/x_1/x_1_0_rgb.jpg"]
