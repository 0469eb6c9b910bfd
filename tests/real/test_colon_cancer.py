"""CRCHistoPhenotypes (colon cancer): raw layout -> constructed format, download, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io
from PIL import Image

from tests.real.fixtures_http import serve
from tests.real.fixtures_images import corrupt, make_crc, zip_folder
from zoomin.cli.main import main
from zoomin.data import download as dl
from zoomin.data.constructed import read_constructed
from zoomin.data.download import LoginRequired
from zoomin.data.sources import colon_cancer, construct_dataset
from zoomin.errors import InputFileError

# 6 images: 3 with epithelial nuclei (positive), 3 without (negative)
COUNTS = [4, 0, 1, 0, 7, 0]


def test_construct_labels_and_masks(tmp_path):
    raw = make_crc(tmp_path / "raw", COUNTS)
    out = tmp_path / "constructed"
    colon_cancer.construct(raw, out)
    dataset = read_constructed(out)
    assert dataset.kind == "image" and dataset.source == "colon_cancer"
    assert dataset.classes == ("negative", "positive")
    assert dataset.image_ids == [f"img{n}" for n in range(1, 7)]
    labels = [r.label for r in dataset.records]
    assert labels == ["positive" if c else "negative" for c in COUNTS]
    assert {r.split for r in dataset.records} == {"all"}
    first = dataset.records[0]
    assert dataset.image_path(first).suffix == ".bmp"
    image = np.asarray(Image.open(dataset.image_path(first)))
    source = np.asarray(Image.open(raw / "CRCHistoPhenotypes_2016_04_28/Classification/img1/img1.bmp"))
    assert np.array_equal(image, source)
    mask = np.asarray(Image.open(dataset.mask_path(first)))
    assert mask.shape == image.shape[:2] and mask.max() == 255
    assert np.asarray(Image.open(dataset.mask_path(dataset.records[1]))).max() == 0


def test_classification_folder_found_at_any_level(tmp_path):
    raw = make_crc(tmp_path / "raw", COUNTS)
    inner = raw / "CRCHistoPhenotypes_2016_04_28" / "Classification"
    construct_dataset("colon_cancer", inner, tmp_path / "out", params={"masks": "false"})
    assert not read_constructed(tmp_path / "out").has_masks


def test_mat_without_detection_names_the_file(tmp_path):
    raw = make_crc(tmp_path / "raw", COUNTS)
    bad = raw / "CRCHistoPhenotypes_2016_04_28/Classification/img3/img3_epithelial.mat"
    scipy.io.savemat(bad, {"points": np.zeros((2, 2))})
    with pytest.raises(InputFileError, match="img3_epithelial.mat.*no 'detection'"):
        colon_cancer.construct(raw, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unreadable_mat_and_corrupt_bmp_name_the_file(tmp_path):
    raw = make_crc(tmp_path / "raw", COUNTS)
    base = raw / "CRCHistoPhenotypes_2016_04_28/Classification"
    (base / "img2/img2_epithelial.mat").write_bytes(b"not a mat file at all" * 4)
    with pytest.raises(InputFileError, match="img2_epithelial.mat"):
        colon_cancer.construct(raw, tmp_path / "out")
    make_crc(tmp_path / "raw", COUNTS)
    corrupt(base / "img5/img5.bmp")
    with pytest.raises(InputFileError, match="img5.bmp.*decoded"):
        colon_cancer.construct(raw, tmp_path / "out")
    (base / "img4/img4_epithelial.mat").unlink()
    with pytest.raises(InputFileError, match="img4_epithelial.mat.*not found"):
        colon_cancer.construct(raw, tmp_path / "out")


def test_missing_layout_explains_what_to_do(tmp_path):
    (tmp_path / "raw").mkdir()
    with pytest.raises(InputFileError, match="crchistophenotypes_2016_04_28.zip"):
        colon_cancer.construct(tmp_path / "raw", tmp_path / "out")


def test_download_and_extract(tmp_path, monkeypatch):
    source = make_crc(tmp_path / "src", COUNTS)
    archive = zip_folder(source, tmp_path / "crc.zip")
    with serve() as server:
        server.add("crc.zip", archive.read_bytes())
        raw = tmp_path / "raw"
        assert main(["download-dataset", "--dataset", "colon_cancer", "--out", str(raw),
                     "--param", f"url={server.url}/crc.zip"]) == 0
    assert (raw / ".complete").is_file()
    records = colon_cancer.construct(raw, tmp_path / "out")
    assert sum(r["label"] == "positive" for r in records) == 3


def test_download_behind_login_tells_where_to_put_the_zip(tmp_path, monkeypatch):
    monkeypatch.setitem(dl.LOGIN_PAGES, "127.0.0.1", "https://example.org/crc")
    raw = tmp_path / "raw"
    with serve() as server:
        server.add("crc.zip", b"<html>please sign in</html>", content_type="text/html")
        server.add("denied.zip", b"", status=404)
        with pytest.raises(LoginRequired) as info:
            colon_cancer.download(raw, url=f"{server.url}/crc.zip")
        assert str((raw / colon_cancer.ARCHIVE_NAME).resolve()) in str(info.value)
        with pytest.raises(LoginRequired, match="HTTP 404"):
            colon_cancer.download(raw, url=f"{server.url}/denied.zip", retries=0)
    assert not (raw / colon_cancer.ARCHIVE_NAME).exists()


def test_zip_placed_by_hand_is_used(tmp_path):
    source = make_crc(tmp_path / "src", COUNTS)
    raw = tmp_path / "raw"
    raw.mkdir()
    zip_folder(source, raw / colon_cancer.ARCHIVE_NAME)
    found = colon_cancer.download(raw, url="http://127.0.0.1:9/never-contacted.zip")
    assert found.name == "Classification"
