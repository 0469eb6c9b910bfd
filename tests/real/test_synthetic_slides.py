"""The synthetic Camelyon16 stand-in: deterministic, a Camelyon16 raw folder OpenSlide and the
Camelyon16 construction read, small metastases in the tissue, and a tumour texture that only full
resolution tells from the follicles it resembles."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import openslide
import pytest
import tifffile
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

from zoomin.data.asap_xml import check_inside, rasterise, read_asap_xml
from zoomin.data.constructed import read_constructed
from zoomin.data.slide_masks import read_mask
from zoomin.data.sources import MARKER, construct_dataset, download_dataset
from zoomin.data.synthetic import slide_tiles, slides
from zoomin.data.synthetic.slide_layout import SlideParams
from zoomin.errors import ConfigError

# Small slides: 2048 x 1536 px, 4 levels, bank of 2 textures; metastases may cover up to 2% of the
# tissue here so that they are not shrunk to a few nuclei.
SMALL = {
    "width": 2048, "height": 1536, "min_level_side": 256, "sections": 1, "regions_min": 3, "regions_max": 4,
    "region_radius_min": 40, "region_radius_max": 50, "tumour_max_fraction": 0.02, "bank_size": 2,
}
COUNTS = {"n_normal": 2, "n_tumour": 2, "n_test_normal": 1, "n_test_tumour": 1}


def file_hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != MARKER
    }


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic_camelyon16") / "raw"
    download_dataset("synthetic_camelyon16", root, {"seed": 3, **COUNTS, **SMALL})
    return root


def test_raw_folder_has_camelyon16_layout(raw):
    assert (raw / MARKER).is_file()
    names = sorted(p.stem for p in (raw / "images").glob("*.tif"))
    assert names == ["normal_001", "normal_002", "test_001", "test_002", "tumor_001", "tumor_002"]
    reference = (raw / "evaluation" / "reference.csv").read_text().splitlines()
    assert reference[0] == "image,class,type,location"
    classes = dict(line.split(",")[:2] for line in reference[1:])
    assert sorted(classes) == ["Test_001", "Test_002"] and sorted(classes.values()) == ["Normal", "Tumor"]
    positive_tests = [name.lower() for name, label in classes.items() if label == "Tumor"]
    annotated = sorted(p.stem for p in (raw / "annotations").glob("*.xml"))
    assert annotated == sorted(["tumor_001", "tumor_002", *positive_tests])
    listed = [line.split("  ")[1] for line in (raw / "checksums.md5").read_text().splitlines()]
    assert sorted(listed) == sorted(f"CAMELYON16/{key}" for key in file_hashes(raw) if key != "checksums.md5")


def test_slides_are_tiled_jpeg_pyramids_openslide_opens(raw):
    params = SlideParams(**SMALL)
    for path in sorted((raw / "images").glob("*.tif")):
        slide = openslide.OpenSlide(str(path))
        assert slide.properties["openslide.vendor"] == "generic-tiff"
        assert slide.dimensions == (2048, 1536) and slide.level_count == 4
        assert slide.level_dimensions == tuple(params.levels())
        assert [round(d) for d in slide.level_downsamples] == [1, 2, 4, 8]
        assert float(slide.properties["openslide.mpp-x"]) == pytest.approx(1.0)
        with tifffile.TiffFile(path) as tif:
            assert len(tif.pages) == 4
            for index, page in enumerate(tif.pages):
                assert page.is_tiled and (page.tilewidth, page.tilelength) == (256, 256)
                assert page.compression == tifffile.COMPRESSION.JPEG and page.jpegtables is not None
                assert page.subfiletype == (0 if index == 0 else 1)
            # OpenSlide and libjpeg through tifffile decode the same pixels
            region = np.asarray(slide.read_region((512, 256), 0, (300, 200)).convert("RGB"))
            assert np.array_equal(region, tif.pages[0].asarray()[256:456, 512:812])
        slide.close()


def test_annotations_lie_inside_the_tissue_and_cover_under_the_limit(raw):
    for xml in sorted((raw / "annotations").glob("*.xml")):
        polygons = read_asap_xml(xml)
        assert 1 <= len(polygons) <= 2 and all(p.group == "Tumor" for p in polygons)
        check_inside(xml, polygons, 2048, 1536, tolerance=0.0)
        slide = openslide.OpenSlide(str(raw / "images" / f"{xml.stem}.tif"))
        low = np.asarray(slide.read_region((0, 0), 2, slide.level_dimensions[2]).convert("RGB"))
        tissue = low.astype(int).std(axis=2) > 8  # the glass is grey, the tissue pink
        tumour = rasterise(polygons, *low.shape[:2], downsample=4.0)
        assert tumour.any() and (tumour & ~tissue).sum() <= 0.02 * tumour.sum()
        assert tumour.sum() < 0.02 * tissue.sum()


def test_default_metastases_are_well_under_one_percent_of_the_tissue():
    params = SlideParams()
    fractions = [slides.slide_layout(0, f"tumor_{i:03d}", True, params)[0].tumour_fraction for i in range(1, 31)]
    assert all(0 < f <= params.tumour_max_fraction < 0.01 for f in fractions)
    negative = slides.slide_layout(0, "normal_001", False, params)[0]
    assert negative.tumours == () and len(negative.follicles) >= params.regions_min


def test_construction_is_camelyon16s(raw, tmp_path):
    out = tmp_path / "constructed"
    construct_dataset("synthetic_camelyon16", raw, out, name="syn", params={"val_fraction": 0.5, "mask_downsample": 4})
    dataset = read_constructed(out)
    assert dataset.kind == "slide" and dataset.classes == ("negative", "positive") and dataset.mpp == 1.0
    by_id = {r.image_id: r for r in dataset.records}
    assert {by_id[i].split for i in ("test_001", "test_002")} == {"test"}
    assert sorted(r.split for r in dataset.records if r.split != "test") == ["train", "train", "val", "val"]
    for record in dataset.records:
        mask = read_mask(out / record.mask)
        assert mask.shape == (384, 512)  # level 2 of the slide, the closest to downsample 4
        assert mask.any() == (record.label == "positive")


def test_same_seed_same_bytes_any_workers_other_seed_other_slides(raw, tmp_path):
    again = tmp_path / "again"
    download_dataset("synthetic_camelyon16", again, {"seed": 3, "workers": 2, **COUNTS, **SMALL})
    assert file_hashes(again) == file_hashes(raw)
    other = tmp_path / "other"
    download_dataset("synthetic_camelyon16", other, {"seed": 4, "n_normal": 1, "n_tumour": 0, "n_test_normal": 0,
                                                     "n_test_tumour": 0, **SMALL})
    assert file_hashes(other)["images/normal_001.tif"] != file_hashes(raw)["images/normal_001.tif"]


def test_fewer_slides_remove_the_old_ones(tmp_path):
    root = tmp_path / "raw"
    options = {"seed": 0, **SMALL, "n_normal": 2, "n_tumour": 1, "n_test_normal": 0, "n_test_tumour": 0}
    download_dataset("synthetic_camelyon16", root, options)
    download_dataset("synthetic_camelyon16", root, {**options, "n_normal": 1, "n_tumour": 0})
    assert [p.name for p in (root / "images").iterdir()] == ["normal_001.tif"]
    assert list((root / "annotations").iterdir()) == []


@pytest.mark.parametrize(
    "options, key",
    [
        ({"widht": 4096}, "download.widht"),
        ({"width": "wide"}, "download.width"),
        ({"width": 512}, "download.width"),
        ({"tile": 200}, "download.tile"),
        ({"quality": 0}, "download.quality"),
        ({"n_normal": -1}, "download.n_normal"),
        ({"n_normal": 0, "n_tumour": 0}, "download.n_normal"),
        ({"workers": 0}, "download.workers"),
        ({"region_radius_max": 400}, "download.region_radius_max"),
        ({"region_radius_min": 20}, "download.region_radius_min"),
        ({"tumours": 9}, "download.tumours"),
        ({"tumour_max_fraction": 0.5}, "download.tumour_max_fraction"),
        ({"tissue_fraction": 0.9}, "download.tissue_fraction"),
    ],
)
def test_bad_generation_parameters_name_their_key_and_write_nothing(tmp_path, options, key):
    with pytest.raises(ConfigError) as error:
        download_dataset("synthetic_camelyon16", tmp_path / "raw", {**SMALL, **options})
    assert error.value.key == key
    assert not (tmp_path / "raw" / MARKER).exists()
    assert not list((tmp_path / "raw").rglob("*.tif"))


def _gradient_features(gray: np.ndarray) -> np.ndarray:
    """|horizontal| and |vertical| neighbour differences: what a first conv layer + ReLU sees."""
    return np.concatenate([np.abs(np.diff(gray, axis=0)).ravel(), np.abs(np.diff(gray, axis=1)).ravel()])


def _cv_accuracy(features: list[np.ndarray], labels: list[bool]) -> float:
    x = np.array(features, dtype=np.float64)
    x = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-6)
    return float(cross_val_score(LogisticRegression(C=0.1, max_iter=500), x, labels, cv=5).mean())


def _decoded(pixels: np.ndarray, quality: int) -> np.ndarray:
    """``pixels`` as a slide stores them: one JPEG tile with the shared tables."""
    import imagecodecs

    tables = slide_tiles.jpeg_tables(quality)
    stream = slide_tiles.jpeg(pixels, quality)
    return imagecodecs.jpeg8_decode(tables[:-2] + stream[2:])


@pytest.mark.parametrize(
    "kind, low_separable, full_separable",
    [("tumour", False, True), ("follicle", False, False), ("stroma", True, True)],
)
def test_metastases_look_like_follicles_below_full_resolution(kind, low_separable, full_separable):
    """Texture tiles of metastases vs follicles, as a slide stores them: at the stage-1 scale of the
    embedded default (1/64, what a 256 px tile is in V1) and at its stage-2 scale (1/16) a classifier
    of their pixels and neighbour differences stays near chance; on a 32 px sub-tile at full
    resolution (JPEG-coded) it separates them. The controls show that both assertions can fail:
    follicles against follicles are not separable even at full resolution, stroma against follicles
    is separable at every scale."""
    params = SlideParams()
    levels = {"stage1": 6, "stage2": 4}  # box pyramids: 1/64 and 1/16
    low: dict[str, list[np.ndarray]] = {name: [] for name in levels}
    full, labels = [], []
    pick = np.random.default_rng(0)
    for index in range(40):
        positive = index % 2 == 1
        rng = np.random.default_rng([7, index])
        canvas = slide_tiles.draw_texture(rng, kind if positive else "follicle", params.tile, params.nucleus_spacing)
        pyramid = slide_tiles.box_pyramid(canvas, 7)
        for name, level in levels.items():
            view = pyramid[level].astype(np.float32)
            low[name].append(np.concatenate([view.ravel(), _gradient_features(view.mean(axis=2))]))
        pixels = _decoded(pyramid[0], params.quality)
        y, x = pick.integers(0, params.tile - 32, 2)
        full.append(_gradient_features(pixels[y : y + 32, x : x + 32].astype(np.float32).mean(axis=2)))
        labels.append(positive)
    for name in levels:
        accuracy = _cv_accuracy(low[name], labels)
        assert (accuracy > 0.9) if low_separable else (accuracy < 0.7), (name, accuracy)
    accuracy = _cv_accuracy(full, labels)
    assert (accuracy > 0.9) if full_separable else (accuracy < 0.7), accuracy
