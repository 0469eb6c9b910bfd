"""Swedish Traffic Signs speed-limit subset: annotation parsing, filtering rules, download, errors."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from PIL import Image

from tests.real.fixtures_http import serve
from tests.real.fixtures_images import corrupt, make_sts_set, sign, zip_folder
from zoomin.data.constructed import read_constructed
from zoomin.data.download import ChecksumError
from zoomin.data.sources import download_dataset, traffic_signs
from zoomin.data.sources.traffic_signs import parse_annotations, speed_limit_label
from zoomin.errors import InputFileError

P = "PROHIBITORY"
SET1 = [
    ("a.jpg", ""),  # no sign at all -> EMPTY
    ("b.jpg", "MISC_SIGNS;"),  # only MISC_SIGNS -> EMPTY
    ("c.jpg", sign("VISIBLE", 40, 40, 10, 10, P, "50_SIGN")),  # -> 50
    # visibility ranks before area: the occluded 80 is larger but the visible 70 wins
    ("d.jpg", sign("VISIBLE", 30, 30, 20, 20, P, "70_SIGN") + ";" + sign("OCCLUDED", 60, 45, 0, 0, P, "80_SIGN")),
    # same visibility: larger area wins
    ("e.jpg", sign("VISIBLE", 20, 20, 10, 10, P, "50_SIGN") + ";" + sign("VISIBLE", 60, 45, 10, 10, P, "80_SIGN")),
    ("f.jpg", sign("VISIBLE", 40, 40, 10, 10, "MANDATORY", "PASS_RIGHT_SIDE")),  # no speed limit -> dropped
    # best speed limit not visible -> dropped, even with a visible non-speed sign
    ("g.jpg", sign("OCCLUDED", 40, 40, 10, 10, P, "50_SIGN") + ";" + sign("VISIBLE", 40, 40, 10, 10, "WARNING", "PEDESTRIAN_CROSSING")),
    ("h.jpg", sign("BLURRED", 40, 40, 10, 10, P, "70_SIGN")),  # -> dropped
    ("i.jpg", sign("VISIBLE", "40.5l", 40, 10, 10, P, "50_SIGN") + ";MISC_SIGNS"),  # junk after a number
    ("j.jpg", sign("SIDE_ROAD", 60, 45, 0, 0, P, "80_SIGN") + ";" + sign("VISIBLE", 20, 20, 15, 15, P, "50_SIGN")),
    ("k.jpg", "MISC_SIGNS;" + sign("VISIBLE", 40, 40, 10, 10, P, "30_SIGN")),  # other limit -> dropped
]
SET1_EXPECTED = {"a": "EMPTY", "b": "EMPTY", "c": "50", "d": "70", "e": "80", "i": "50", "j": "50"}
SET2 = [
    ("x.jpg", ""),
    ("y.jpg", sign("VISIBLE", 50, 40, 10, 10, P, "80_SIGN")),
    ("z.jpg", sign("OCCLUDED", 50, 40, 10, 10, P, "80_SIGN")),
]
SET2_EXPECTED = {"x": "EMPTY", "y": "80"}


def make_raw(root):
    make_sts_set(root, "Set1", SET1)
    make_sts_set(root, "Set2", SET2)
    return root


def test_parse_annotations(tmp_path):
    folder = make_sts_set(tmp_path, "Set1", SET1)
    entries = parse_annotations(folder / "annotations.txt")
    assert [name for name, _, _ in entries] == [name for name, _ in SET1]
    _, signs, line = entries[3]
    assert line == 4 and len(signs) == 2
    assert signs[0].box == (20, 20, 30, 30) and signs[0].area == 100  # lower-right corner comes first
    assert entries[1][1] == []  # MISC_SIGNS ignored
    assert entries[8][1][0].lrx == 40.5


def test_filtering_rules(tmp_path):
    folder = make_sts_set(tmp_path, "Set1", SET1)
    labels = {name[0]: speed_limit_label(signs)[0] for name, signs, _ in parse_annotations(folder / "annotations.txt")}
    assert {k: v for k, v in labels.items() if v is not None} == SET1_EXPECTED
    assert speed_limit_label([])[0] == "EMPTY"


def test_construct_counts_labels_and_masks(tmp_path):
    raw = make_raw(tmp_path / "raw")
    traffic_signs.construct(raw, tmp_path / "out")
    dataset = read_constructed(tmp_path / "out")
    assert dataset.classes == ("EMPTY", "50", "70", "80")
    train = {r.image_id: r.label for r in dataset.records if r.split == "train"}
    test = {r.image_id: r.label for r in dataset.records if r.split == "test"}
    assert train == {f"Set1_{k}": v for k, v in SET1_EXPECTED.items()}
    assert test == {f"Set2_{k}": v for k, v in SET2_EXPECTED.items()}
    record = dataset.record("Set1_c")
    mask = np.asarray(Image.open(dataset.mask_path(record)))
    assert mask.shape == (48, 64)
    assert mask[10:41, 10:41].min() == 255 and mask.sum() == 31 * 31 * 255
    assert np.asarray(Image.open(dataset.mask_path(dataset.record("Set1_a")))).max() == 0
    # the mask of e holds only the winning 80 sign's box
    mask_e = np.asarray(Image.open(dataset.mask_path(dataset.record("Set1_e"))))
    assert mask_e[15, 15] == 255 and mask_e[44, 59] == 255


def test_unparsable_line_names_file_and_line(tmp_path):
    raw = make_raw(tmp_path / "raw")
    path = raw / "Set2" / "annotations.txt"
    lines = path.read_text().splitlines()
    lines.insert(1, "y.jpg:VISIBLE, 50, 40, 10, PROHIBITORY, 80_SIGN")  # a field missing
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputFileError, match=r"Set2/annotations.txt: line 2: .*7 fields"):
        traffic_signs.construct(raw, tmp_path / "out")
    path.write_text("no colon on this line\n")
    with pytest.raises(InputFileError, match="line 1"):
        traffic_signs.construct(raw, tmp_path / "out")
    path.write_text("x.jpg:VISIBLE, abc, 40, 10, 10, P, 50_SIGN\n")
    with pytest.raises(InputFileError, match="line 1: bad coordinate"):
        traffic_signs.construct(raw, tmp_path / "out")
    path.write_text("x.jpg:HIDDEN, 1, 1, 0, 0, P, 50_SIGN\n")
    with pytest.raises(InputFileError, match="unknown visibility"):
        traffic_signs.construct(raw, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_missing_and_corrupt_images_name_the_file(tmp_path):
    raw = make_raw(tmp_path / "raw")
    corrupt(raw / "Set1" / "c.jpg")
    with pytest.raises(InputFileError, match="c.jpg.*decoded"):
        traffic_signs.construct(raw, tmp_path / "out")
    (raw / "Set1" / "c.jpg").unlink()
    with pytest.raises(InputFileError, match="c.jpg.*line 3"):
        traffic_signs.construct(raw, tmp_path / "out")


def test_images_in_a_subfolder_are_found(tmp_path):
    raw = make_raw(tmp_path / "raw")
    sub = raw / "Set2" / "Set2Part0"
    sub.mkdir()
    for name in ("x.jpg", "y.jpg", "z.jpg"):
        (raw / "Set2" / name).rename(sub / name)
    records = traffic_signs.construct(raw, tmp_path / "out", masks=False)
    assert len([r for r in records if r["split"] == "test"]) == 2


def test_download_checks_the_annotations_md5(tmp_path):
    source = make_raw(tmp_path / "src")
    with serve() as server:
        for set_name in ("Set1", "Set2"):
            archive = tmp_path / f"{set_name}Part0.zip"
            zip_folder(source / set_name, archive)  # images at the top level, as in the real zips
            server.add(f"sts/{set_name}/{archive.name}", archive.read_bytes())
            server.add(f"sts/{set_name}/annotations.txt", (source / set_name / "annotations.txt").read_bytes())
        raw = tmp_path / "raw"
        # the fixture's annotations are not the real ones: the real md5 refuses them
        with pytest.raises(ChecksumError, match="md5"):
            traffic_signs.download(raw, base_url=f"{server.url}/sts")
        assert not (raw / "Set1" / "annotations.txt").exists()
        download_dataset("traffic_signs", raw, {"base_url": f"{server.url}/sts", "verify_md5": "false"})
    records = traffic_signs.construct(raw, tmp_path / "out")
    assert len(records) == len(SET1_EXPECTED) + len(SET2_EXPECTED)
    digest = hashlib.md5((raw / "Set1" / "annotations.txt").read_bytes()).hexdigest()
    assert digest == hashlib.md5((source / "Set1" / "annotations.txt").read_bytes()).hexdigest()
