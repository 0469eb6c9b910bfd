"""ASAP XML: parsing, exact rasterisation (holes excluded), and errors that name the file and annotation."""

from __future__ import annotations

import numpy as np
import pytest

from tests.real.fixtures_slides import TUMOUR_POLYGONS, make_slide, polygon_mask, write_asap_xml
from zoomin.data.asap_xml import Polygon, check_inside, rasterise, read_asap_xml
from zoomin.data.slide_access import SlideReader
from zoomin.data.slide_masks import mask_from_xml
from zoomin.errors import InputFileError


def test_parse_groups(tmp_path):
    polygons = read_asap_xml(write_asap_xml(tmp_path / "a.xml", TUMOUR_POLYGONS))
    assert [p.group for p in polygons] == ["_0", "Tumor", "_2"]
    assert [p.excluded for p in polygons] == [False, False, True]
    assert polygons[0].points.shape == (4, 2) and polygons[0].bounds() == (600, 700, 680, 780)


@pytest.mark.parametrize("downsample", [1, 2, 4, 3])
def test_rasterise_is_exact(tmp_path, downsample):
    polygons = read_asap_xml(write_asap_xml(tmp_path / "a.xml", TUMOUR_POLYGONS))
    truth = polygon_mask(2048, 2048, TUMOUR_POLYGONS)
    sampled = truth[downsample // 2 :: downsample, downsample // 2 :: downsample] if downsample > 1 else truth
    got = rasterise(polygons, sampled.shape[0], sampled.shape[1], float(downsample))
    assert np.array_equal(got, sampled)
    assert not got[1160 // downsample, 1260 // downsample]  # the _2 hole is cleared
    window = rasterise(polygons, 100, 100, 2.0, top=1000, left=1150)
    assert np.array_equal(window, truth[1001:1201:2, 1151:1351:2])


def test_outline_keeps_tiny_lesions():
    tiny = [Polygon("t", "_0", False, np.array([[10.0, 10], [12, 10], [12, 12]]))]
    assert rasterise(tiny, 4, 4, 32.0).sum() == 0
    assert rasterise(tiny, 4, 4, 32.0, outline=True)[0, 0]


def test_triangle_uses_pixel_centres():
    triangle = [Polygon("t", "_0", False, np.array([[1.0, 1], [5, 3], [1, 5]]))]
    got = rasterise(triangle, 6, 6)
    assert got[1, 1] and got[2, 3] and not got[2, 4] and not got[0, 1] and got.sum() == 8


def test_malformed_xml_names_the_file(tmp_path):
    bad = tmp_path / "broken.xml"
    bad.write_text(write_asap_xml(tmp_path / "ok.xml", TUMOUR_POLYGONS).read_text()[:300])
    with pytest.raises(InputFileError, match="broken.xml"):
        read_asap_xml(bad)
    other = tmp_path / "other.xml"
    other.write_text("<Annotations/>")
    with pytest.raises(InputFileError, match="ASAP_Annotations"):
        read_asap_xml(other)


@pytest.mark.parametrize(
    "polygons, message",
    [
        ([("Blob 7", "Lymph", [(1, 1), (5, 1), (5, 5)])], "Blob 7.*Lymph"),
        ([("Two points", "_0", [(1, 1), (5, 1)])], "Two points.*at least 3"),
        ([("Bad", "_0", [(1, 1), ("x", 1), (5, 5)])], "Bad.*not a number"),
    ],
)
def test_bad_annotations_name_file_and_annotation(tmp_path, polygons, message):
    path = write_asap_xml(tmp_path / "ann.xml", polygons)
    with pytest.raises(InputFileError, match=message) as error:
        read_asap_xml(path)
    assert "ann.xml" in str(error.value)


def test_polygon_outside_the_slide(tmp_path):
    slide = make_slide(tmp_path / "s.tif", size=1024)
    far = TUMOUR_POLYGONS[:1] + [("Annotation 9", "_1", [(3000, 3000), (3100, 3000), (3100, 3100)])]
    xml = write_asap_xml(tmp_path / "far.xml", far)
    with pytest.raises(InputFileError, match="Annotation 9.*outside the 1024x1024 slide") as error:
        mask_from_xml(xml, SlideReader(slide.path), 4.0)
    assert "far.xml" in str(error.value)
    check_inside(xml, read_asap_xml(xml)[:1], 1024, 1024)  # the other one fits
