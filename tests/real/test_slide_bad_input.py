"""Bad whole-slide input (issue 14): a slide OpenSlide cannot open, a slide without tissue, an
annotation outside its slide, a label file naming a missing slide. Each is an error naming the file,
and neither the constructed folder nor a slide cache is left half-written."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.real.fixtures_slides import BACKGROUND, make_camelyon_raw, make_truncated_tiff, write_asap_xml, write_pyramid
from zoomin.data.constructed import read_constructed
from zoomin.data.slide_cache import build_constructed_slide_cache, build_slide_cache
from zoomin.data.sources import construct_dataset
from zoomin.errors import InputFileError


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bad_slides") / "CAMELYON16"
    make_camelyon_raw(root, n_normal=2, n_tumour=1, test_labels=("Normal",), size=512, masks=False)
    return root


@pytest.fixture
def raw(pristine, tmp_path) -> Path:
    copy = tmp_path / "CAMELYON16"
    shutil.copytree(pristine, copy)
    return copy


def blank_slide(path: Path) -> Path:
    """A pyramidal TIFF of glass only."""
    write_pyramid(path, np.broadcast_to(np.array(BACKGROUND, np.uint8), (512, 512, 3)).copy())
    return path


def construct_fails(raw: Path, out: Path, file: str, problem: str) -> None:
    with pytest.raises(InputFileError) as error:
        construct_dataset("camelyon16", raw, out, params={"mask_downsample": 2})
    assert Path(error.value.path).name == file and problem in error.value.problem, error.value
    assert not out.exists() and not list(out.parent.glob(f".{out.name}*"))  # no staged leftovers


def test_a_slide_openslide_cannot_open(raw, tmp_path):
    make_truncated_tiff(raw / "images" / "tumor_001.tif", size=512)
    construct_fails(raw, tmp_path / "out", "tumor_001.tif", "")


def test_a_file_that_is_no_slide(raw, tmp_path):
    (raw / "images" / "normal_002.tif").write_bytes(b"this is not a TIFF\n")
    construct_fails(raw, tmp_path / "out", "normal_002.tif", "not a slide format OpenSlide can read")


def test_a_slide_without_tissue(raw, tmp_path):
    blank_slide(raw / "images" / "normal_002.tif")
    construct_fails(raw, tmp_path / "out", "normal_002.tif", "shows no tissue")


def test_a_slide_without_tissue_gets_no_cache(tmp_path):
    slide = blank_slide(tmp_path / "glass.tif")
    with pytest.raises(InputFileError, match="glass.tif.*no tissue"):
        build_slide_cache(slide, tmp_path / "glass.h5", [0.125], 128)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["glass.tif"]


def test_an_annotation_outside_the_slide(raw, tmp_path):
    far = [("Annotation 0", "Tumor", [(4000, 4000), (4100, 4000), (4100, 4100), (4000, 4100)])]
    write_asap_xml(raw / "annotations" / "tumor_001.xml", far)
    construct_fails(raw, tmp_path / "out", "tumor_001.xml", "outside the 512x512 slide")


def test_a_label_file_naming_a_missing_slide(raw, tmp_path):
    out = tmp_path / "constructed"
    construct_dataset("camelyon16", raw, out, params={"mask_downsample": 2, "link": "copy"})
    (out / "images" / "normal_001.tif").unlink()  # labels.csv still names it
    with pytest.raises(InputFileError, match="normal_001.tif: image file listed in .*labels.csv .* is missing"):
        read_constructed(out)
    cache = tmp_path / "slides" / "normal_002.h5"  # the slide-cache job of any slide reads labels.csv first
    with pytest.raises(InputFileError, match="normal_001.tif: image file listed"):
        build_constructed_slide_cache(out, "normal_002", cache, [0.125], 128)
    assert not cache.parent.exists() or not list(cache.parent.iterdir())


def test_a_reference_naming_no_label_for_a_test_slide(raw, tmp_path):
    (raw / "evaluation" / "reference.csv").write_text("image,class,type,location\nTest_009,Tumor,Macro,Metastases\n")
    construct_fails(raw, tmp_path / "out", "reference.csv", "has no label for test slide test_001")
