"""The constructed-dataset format: round trip, and every invalid case refused with the file named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zoomin.data import constructed as constructed_module
from zoomin.data.constructed import (
    ImageRecord,
    read_constructed,
    staged_folder,
    write_constructed,
)
from zoomin.errors import InputFileError

CLASSES = ["negative", "positive"]


def make_images(root: Path, n: int = 4) -> list[ImageRecord]:
    """n small PNGs under root/images and their records (alternating labels, split all)."""
    records = []
    for i in range(n):
        path = f"images/img_{i}.png"
        (root / "images").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((6, 8, 3), i * 20, dtype=np.uint8)).save(root / path)
        records.append(ImageRecord(f"img_{i}", path, CLASSES[i % 2], "all"))
    return records


def write(root: Path, records, classes=CLASSES, **kwargs):
    return write_constructed(root, "toy", "image", classes, records, source="test", **kwargs)


def test_round_trip(tmp_path):
    records = make_images(tmp_path)
    Image.fromarray(np.zeros((6, 8), dtype=np.uint8)).save(tmp_path / "images" / "m.png")
    records[1] = ImageRecord(records[1].image_id, records[1].path, "positive", "all", "images/m.png")
    write(tmp_path, records, mpp=0.5, seed=3)
    dataset = read_constructed(tmp_path)
    assert dataset.records == tuple(records)
    assert dataset.classes == tuple(CLASSES)
    assert (dataset.name, dataset.kind, dataset.source, dataset.mpp, dataset.seed) == ("toy", "image", "test", 0.5, 3)
    assert dataset.has_masks and dataset.mask_path(dataset.records[1]) == tmp_path / "images/m.png"
    assert dataset.label_index(dataset.record("img_1")) == 1
    header = (tmp_path / "labels.csv").read_text().splitlines()[0]
    assert header == "image_id,path,label,split,mask"
    meta = json.loads((tmp_path / "dataset.json").read_text())
    assert meta["format_version"] == 1


def test_mapping_records_and_no_mask_column(tmp_path):
    records = [r.__dict__ for r in make_images(tmp_path)]
    write(tmp_path, records)
    assert (tmp_path / "labels.csv").read_text().splitlines()[0] == "image_id,path,label,split"
    assert read_constructed(tmp_path).records[0].mask is None


BAD_RECORDS = {
    "unknown class": (lambda r: r[:3] + [ImageRecord("img_3", r[3].path, "maybe", "all")], "unknown class", "labels.csv"),
    "missing file": (lambda r: r[:3] + [ImageRecord("img_3", "images/nope.png", "positive", "all")], "missing", "nope.png"),
    "duplicate id": (lambda r: r[:3] + [ImageRecord("img_0", r[3].path, "positive", "all")], "duplicate", "labels.csv"),
    "invalid id": (lambda r: r[:3] + [ImageRecord("img 3/x", r[3].path, "positive", "all")], "invalid image_id", "labels.csv"),
    "empty": (lambda r: [], "empty", "labels.csv"),
    "single class": (lambda r: [x for x in r if x.label == "negative"], "single-class", "labels.csv"),
    "bad split": (lambda r: r[:3] + [ImageRecord("img_3", r[3].path, "positive", "dev")], "unknown split", "labels.csv"),
    "mixed all/train": (lambda r: r[:3] + [ImageRecord("img_3", r[3].path, "positive", "train")], "cannot be mixed", "labels.csv"),
    "escaping path": (lambda r: r[:3] + [ImageRecord("img_3", "../x.png", "positive", "all")], "inside the folder", "labels.csv"),
    "missing mask": (lambda r: r[:3] + [ImageRecord("img_3", r[3].path, "positive", "all", "masks/m.png")], "mask", "m.png"),
}


@pytest.mark.parametrize("case", sorted(BAD_RECORDS))
def test_write_refuses_bad_records_and_writes_nothing(tmp_path, case):
    mutate, problem, named = BAD_RECORDS[case]
    records = mutate(make_images(tmp_path))
    with pytest.raises(InputFileError) as error:
        write(tmp_path, records)
    assert problem in str(error.value) and named in str(error.value)
    assert not (tmp_path / "labels.csv").exists() and not (tmp_path / "dataset.json").exists()


@pytest.mark.parametrize("case", sorted(BAD_RECORDS))
def test_read_refuses_bad_labels(tmp_path, case):
    mutate, problem, named = BAD_RECORDS[case]
    write(tmp_path, make_images(tmp_path))
    rows = mutate(make_images(tmp_path))
    lines = ["image_id,path,label,split,mask"] + [
        f"{r.image_id},{r.path},{r.label},{r.split},{r.mask or ''}" for r in rows
    ]
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(InputFileError) as error:
        read_constructed(tmp_path)
    assert problem in str(error.value) and named in str(error.value)


def test_write_refuses_a_single_declared_class(tmp_path):
    records = [r for r in make_images(tmp_path) if r.label == "negative"]
    with pytest.raises(InputFileError, match="at least two classes"):
        write(tmp_path, records, classes=["negative"])
    assert not (tmp_path / "dataset.json").exists()


@pytest.mark.parametrize(
    "content, problem",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"format_version": 2, "name": "t", "kind": "image", "classes": ["a", "b"], "source": "s"}', "format_version"),
        ('{"format_version": 1, "name": "t", "kind": "video", "classes": ["a", "b"], "source": "s"}', "'kind'"),
        ('{"format_version": 1, "name": "t", "kind": "image", "classes": "ab", "source": "s"}', "'classes'"),
        ('{"format_version": 1, "name": "t", "kind": "image", "classes": ["a", "a"], "source": "s"}', "distinct"),
        ('{"format_version": 1, "kind": "image", "classes": ["a", "b"], "source": "s"}', "'name'"),
        ('{"format_version": 1, "name": "t", "kind": "image", "classes": ["a", "b"], "source": "s", "mpp": -1}', "'mpp'"),
    ],
)
def test_read_refuses_bad_dataset_json(tmp_path, content, problem):
    write(tmp_path, make_images(tmp_path))
    (tmp_path / "dataset.json").write_text(content)
    with pytest.raises(InputFileError) as error:
        read_constructed(tmp_path)
    assert problem in str(error.value) and "dataset.json" in str(error.value)


def test_read_refuses_missing_files_and_columns(tmp_path):
    with pytest.raises(InputFileError, match="dataset.json"):
        read_constructed(tmp_path)
    write(tmp_path, make_images(tmp_path))
    (tmp_path / "labels.csv").write_text("image_id,path,label\nimg_0,images/img_0.png,negative\n")
    with pytest.raises(InputFileError, match="labels.csv.*missing column.*split"):
        read_constructed(tmp_path)
    (tmp_path / "labels.csv").write_text("image_id,path,label,split\nimg_0,images/img_0.png\n")
    with pytest.raises(InputFileError, match="labels.csv.*wrong number of fields"):
        read_constructed(tmp_path)
    (tmp_path / "labels.csv").unlink()
    with pytest.raises(InputFileError, match="labels.csv: missing"):
        read_constructed(tmp_path)


def test_dataset_json_is_written_last(tmp_path, monkeypatch):
    records = make_images(tmp_path)
    write(tmp_path, records)

    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(constructed_module.json, "dumps", fail)
    with pytest.raises(RuntimeError):
        write(tmp_path, records)
    assert not (tmp_path / "dataset.json").exists()  # an unfinished rewrite is not "complete"
    assert not list(tmp_path.glob(".*.tmp"))


def test_staged_folder(tmp_path):
    target = tmp_path / "out"
    with pytest.raises(RuntimeError):
        with staged_folder(target) as staging:
            (staging / "a").write_text("x")
            raise RuntimeError("boom")
    assert not target.exists() and not list(tmp_path.iterdir())
    with staged_folder(target) as staging:
        write(staging, make_images(staging))
    assert read_constructed(target).name == "toy"
    with staged_folder(target) as staging:  # a constructed folder may be replaced
        write(staging, make_images(staging, 6))
    assert len(read_constructed(target)) == 6
    other = tmp_path / "precious"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(InputFileError, match="refusing"):
        with staged_folder(other):
            pass
    assert (other / "notes.txt").read_text() == "keep me"
