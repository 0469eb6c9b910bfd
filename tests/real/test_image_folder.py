"""Bring-your-own image folder + labels CSV -> constructed format."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.real.fixtures_images import corrupt, save_image
from zoomin.data.constructed import read_constructed
from zoomin.data.sources import construct_dataset, image_folder
from zoomin.errors import InputFileError


def make_folder(root, rows, header="image,label,split,mask"):
    save_image(root / "imgs" / "a.png", 20, 30, seed=1)
    save_image(root / "imgs" / "sub" / "b.jpg", 20, 30, seed=2, format="JPEG")
    save_image(root / "imgs" / "c.tif", 20, 30, seed=3, format="TIFF")
    mask = np.zeros((20, 30, 3), dtype=np.uint8)
    mask[2:5, 3:9] = (0, 0, 7)
    Image.fromarray(mask).save(root / "imgs" / "a_mask.png")
    (root / "labels.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    return root


ROWS = ["a.png,tumour,train,a_mask.png", "sub/b.jpg,normal,train,", "c.tif,normal,test,"]


def test_construct_with_splits_masks_and_conversion(tmp_path):
    raw = make_folder(tmp_path / "raw", ROWS)
    params = {"images": raw / "imgs", "classes": "normal,tumour"}
    construct_dataset("image_folder", raw, tmp_path / "out", name="mine", params=params)
    dataset = read_constructed(tmp_path / "out")
    assert dataset.name == "mine" and dataset.classes == ("normal", "tumour")
    assert dataset.image_ids == ["a", "sub__b", "c"]
    assert [r.split for r in dataset.records] == ["train", "train", "test"]
    c = dataset.record("c")
    assert c.path == "images/c.png"  # TIFF converted to PNG
    original = np.asarray(Image.open(raw / "imgs" / "c.tif").convert("RGB"))
    assert np.array_equal(np.asarray(Image.open(dataset.image_path(c))), original)
    mask = np.asarray(Image.open(dataset.mask_path(dataset.record("a"))))
    assert mask.dtype == np.uint8 and mask.ndim == 2 and (mask == 255).sum() == 18
    assert dataset.record("sub__b").mask is None


def test_default_split_and_sorted_classes(tmp_path):
    raw = make_folder(tmp_path / "raw", ["imgs/a.png,1", "imgs/sub/b.jpg,0", "imgs/c.tif,1"], header="image,label")
    records = image_folder.construct(raw, tmp_path / "out")
    assert {r["split"] for r in records} == {"all"}
    assert read_constructed(tmp_path / "out").classes == ("0", "1")


@pytest.mark.parametrize(
    "rows, header, pattern",
    [
        (["a.png,x"], "picture,label", "missing column.*image"),
        (["a.png,"], "image,label", "line 2: empty 'label'"),
        (["a.png,x,train", "a.png,y,train"], "image,label,split", "line 3: .*already used on line 2"),
        (["a.png,x,validation"], "image,label,split", "line 2: split 'validation'"),
        (["a.png,x", "sub/b.jpg,y,extra"], "image,label", "line 3: wrong number of fields"),
        (["missing.png,x", "a.png,y"], "image,label", "missing.png.*line 2"),
        (["a.png,x", "sub/b.jpg,z"], "image,label", None),
    ],
)
def test_bad_labels_csv_names_file_and_line(tmp_path, rows, header, pattern):
    raw = make_folder(tmp_path / "raw", rows, header=header)
    if pattern is None:  # a label outside the given classes
        with pytest.raises(InputFileError, match="line 3: label 'z'"):
            image_folder.construct(raw, tmp_path / "out", images=raw / "imgs", classes=["x", "y"])
        return
    with pytest.raises(InputFileError, match=pattern):
        image_folder.construct(raw, tmp_path / "out", images=raw / "imgs")
    assert not (tmp_path / "out").exists()


def test_corrupt_image_and_wrong_mask_size(tmp_path):
    raw = make_folder(tmp_path / "raw", ROWS)
    corrupt(raw / "imgs" / "sub" / "b.jpg")
    with pytest.raises(InputFileError, match="b.jpg.*decoded"):
        image_folder.construct(raw, tmp_path / "out", images=raw / "imgs")
    raw = make_folder(tmp_path / "raw2", ROWS)
    Image.fromarray(np.zeros((5, 5), dtype=np.uint8)).save(raw / "imgs" / "a_mask.png")
    with pytest.raises(InputFileError, match="a_mask.png.*mask is 5x5"):
        image_folder.construct(raw, tmp_path / "out", images=raw / "imgs")


def test_cli_construct(tmp_path, capsys):
    from zoomin.cli.main import main

    raw = make_folder(tmp_path / "raw", ROWS)
    out = tmp_path / "out"
    args = ["construct", "--source", "image_folder", "--out", str(out), "--param", f"labels={raw / 'labels.csv'}",
            "--param", f"images={raw / 'imgs'}", "--param", "classes=normal,tumour"]
    assert main(args) == 0
    assert read_constructed(out).classes == ("normal", "tumour")
    assert main([*args, "--param", "colour=blue"]) == 1
    assert "does not take colour" in capsys.readouterr().err
    assert main(["construct", "--source", "image_folder", "--out", str(out)]) == 1
    assert "labels" in capsys.readouterr().err
