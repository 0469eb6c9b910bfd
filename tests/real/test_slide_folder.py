"""Bring-your-own slides: folder + labels CSV (+ ASAP XML or mask per slide) -> constructed kind: slide."""

from __future__ import annotations

import numpy as np
import pytest

from tests.real.fixtures_slides import TUMOUR_POLYGONS, make_mask_tiff, make_slide, write_asap_xml
from zoomin.data.constructed import read_constructed
from zoomin.data.slide_masks import read_mask
from zoomin.data.sources import construct_dataset, slide_folder
from zoomin.errors import InputFileError

HALF = [(n, g, [(x // 2, y // 2) for x, y in p]) for n, g, p in TUMOUR_POLYGONS]
RENAMED = [(n, "tumour" if g != "_2" else "hole", p) for n, g, p in HALF]  # the user's own group names


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    root = tmp_path_factory.mktemp("byo")
    truths = {}
    for name, polygons in [("case_a", HALF), ("case_b", HALF), ("case_c", None), ("case_d", None)]:
        truths[name] = make_slide(root / "slides" / f"{name}.tif", size=1024, tumour_polygons=polygons)
    write_asap_xml(root / "xml" / "case_a.xml", RENAMED)
    make_mask_tiff(root / "masks" / "case_b_mask.tif", truths["case_b"].tumour)
    (root / "labels.csv").write_text(
        "path,label,annotation,mask\n"
        "slides/case_a.tif,tumour,xml/case_a.xml,\n"
        "slides/case_b.tif,tumour,,masks/case_b_mask.tif\n"
        "slides/case_c.tif,normal,,\n"
        "slides/case_d.tif,normal,,\n"
    )
    return root, truths


def test_construct(raw, tmp_path):
    root, truths = raw
    params = {"classes": "normal,tumour", "tumour_groups": "tumour", "excluded_groups": "hole", "mask_downsample": 4,
              "val_fraction": 0.5}
    construct_dataset("slide_folder", root, tmp_path / "out", params=params)
    dataset = read_constructed(tmp_path / "out")
    assert dataset.kind == "slide" and dataset.classes == ("normal", "tumour")
    by_id = {r.image_id: r for r in dataset.records}
    assert sorted(by_id) == ["case_a", "case_b", "case_c", "case_d"]
    assert sorted(r.split for r in dataset.records) == ["train", "train", "val", "val"]
    assert np.array_equal(read_mask(tmp_path / "out" / by_id["case_a"].mask), truths["case_a"].tumour[2::4, 2::4])
    mask_b = read_mask(tmp_path / "out" / by_id["case_b"].mask)
    assert (mask_b != truths["case_b"].tumour[2::4, 2::4]).mean() < 0.002
    assert by_id["case_c"].mask is None


def test_default_groups_refuse_unknown_names(raw, tmp_path):
    root, _ = raw
    with pytest.raises(InputFileError, match="case_a.xml.*'tumour'"):
        slide_folder.construct(root, tmp_path / "out")


def test_missing_slide_names_the_csv(tmp_path):
    (tmp_path / "labels.csv").write_text("path,label\nslides/nope.tif,tumour\n")
    with pytest.raises(InputFileError, match="labels.csv.*nope.tif"):
        slide_folder.construct(tmp_path, tmp_path / "out")
    (tmp_path / "labels.csv").write_text("file,label\nx,y\n")
    with pytest.raises(InputFileError, match="missing column"):
        slide_folder.construct(tmp_path, tmp_path / "out")
