"""NeedleCamelyon: positive crops hold a whole metastasis within the ROI range, balanced negatives, splits."""

from __future__ import annotations

import csv
from collections import Counter

import numpy as np
import openslide
import pytest
from PIL import Image

from tests.real.fixtures_slides import make_camelyon_raw
from zoomin.data.constructed import read_constructed
from zoomin.data.sources import needle_camelyon
from zoomin.errors import InputFileError

PARAMS = dict(crop_size=64, level=1, roi_low=0.05, roi_high=0.5, crops_per_metastasis=5, seed=4)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    base = tmp_path_factory.mktemp("needle")
    raw = base / "CAMELYON16"
    truths = make_camelyon_raw(raw, n_normal=3, n_tumour=2)
    needle_camelyon.construct(raw, base / "out", **PARAMS)
    with open(base / "out" / "crops.csv", newline="") as handle:
        crops = list(csv.DictReader(handle))
    return raw, truths, base / "out", crops


def test_counts_balance_and_splits(built):
    _, _, out, crops = built
    dataset = read_constructed(out)
    assert dataset.kind == "image" and dataset.classes == ("negative", "positive") and dataset.mpp == 0.5
    counts = Counter((r.split, r.label) for r in dataset.records)
    # 3 tumour slides (tumor_001, tumor_002, test_001) x 2 metastases x 5 crops
    assert sum(n for (s, label), n in counts.items() if label == "positive") == 30
    for split in ("train", "val", "test"):
        assert counts[(split, "positive")] == counts[(split, "negative")] > 0
    groups: dict[str, set[str]] = {}
    for crop in crops:
        groups.setdefault(crop["group"], set()).add(crop["split"])
    assert all(len(splits) == 1 for splits in groups.values())  # no metastasis straddles splits
    assert len([g for g in groups if "/m" in g]) == 6


def test_positive_crops_hold_a_whole_metastasis(built):
    raw, truths, out, crops = built
    for crop in crops:
        pixels = np.asarray(Image.open(out / "images" / f"{crop['image_id']}.png"))
        mask = np.asarray(Image.open(out / "masks" / f"{crop['image_id']}.png")) > 0
        assert pixels.shape == (64, 64, 3) and mask.shape == (64, 64)
        top, left = int(crop["top"]), int(crop["left"])
        slide = openslide.OpenSlide(str(raw / "images" / f"{crop['slide']}.tif"))
        want = np.asarray(slide.read_region((left, top), 1, (64, 64)))[:, :, :3]
        assert np.array_equal(pixels, want)
        if crop["label"] == "positive":
            fraction = mask.mean()
            assert 0.05 < fraction < 0.5 and fraction == pytest.approx(float(crop["tumour_fraction"]), abs=1e-3)
            truth = truths[crop["slide"]].tumour[1::2, 1::2]  # level 1
            assert np.array_equal(mask, truth[top // 2 : top // 2 + 64, left // 2 : left // 2 + 64])
            assert mask.sum() in (400, 800)  # metastasis A (20x20) or B (30x30 minus a 10x10 hole)
        else:
            assert not mask.any() and float(crop["tissue_fraction"]) >= 0.5
            assert crop["slide"].startswith(("normal_", "test_002"))


def test_seeded(built, tmp_path):
    raw, _, out, crops = built
    needle_camelyon.construct(raw, tmp_path / "again", **PARAMS)
    assert (tmp_path / "again" / "crops.csv").read_text() == (out / "crops.csv").read_text()


def test_impossible_range_is_reported(built, tmp_path):
    raw = built[0]
    params = dict(PARAMS, roi_low=0.6, roi_high=0.9)
    with pytest.raises(InputFileError, match="no metastasis gives"):
        needle_camelyon.construct(raw, tmp_path / "o", **params)
