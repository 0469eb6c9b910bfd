"""Synthetic stand-ins: deterministic, the promised counts/classes/splits/ROI fractions, and hard in
the paper's way (the low-resolution view cannot tell the classes apart, full resolution can)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

from zoomin.cli.main import main as cli_main
from zoomin.data.constructed import read_constructed
from zoomin.data.synthetic import STAND_INS, generate, render_one
from zoomin.data.synthetic import common as common_module
from zoomin.errors import ConfigError
from zoomin.image_access import crop_padded, resize_uint8

TINY = {
    "colon": {"n_images": 8, "image_size": 128},
    "needle_camelyon": {"n_images": 6, "image_size": 200, "roi_min": 0.01, "roi_max": 0.03},
    "traffic_signs": {"n_images": 8, "image_size": [200, 150]},
    "fmow": {"n_images": 8, "image_size": 128, "n_classes": 4},
    "needle_mnist": {"n_images": 6, "image_size": 128},
    "parametric": {"n_train": 4, "n_val": 2, "n_test": 2, "image_size": 64, "ratio": 0.02},
}
# The traffic-sign stand-in as config/config.yaml draws it (pattern glyphs).
EMBEDDED_TRAFFIC = {"image_size": [320, 240], "glyph": "pattern", "sign_min": 28, "sign_max": 34, "distractors": "other"}
EXPECTED = {
    "colon": (["negative", "positive"], {"all"}),
    "needle_camelyon": (["negative", "positive"], {"train", "val", "test"}),
    "traffic_signs": (["EMPTY", "50", "70", "80"], {"train", "test"}),
    "fmow": (["airport", "amusement_park", "aquaculture", "archaeological_site"], {"train", "test"}),
    "needle_mnist": (["negative", "positive"], {"train", "val", "test"}),
    "parametric": (["negative", "positive"], {"train", "val", "test"}),
}


def pixel_hashes(dataset) -> list[str]:
    return [
        hashlib.sha256(np.asarray(Image.open(dataset.image_path(r))).tobytes()).hexdigest()
        for r in dataset.records
    ]


def test_every_stand_in_is_covered():
    assert set(STAND_INS) == set(TINY)


@pytest.mark.parametrize("kind", sorted(TINY))
def test_generation_is_deterministic_and_valid(kind, tmp_path):
    first = generate(kind, tmp_path / "a", seed=5, progress=False, **TINY[kind])
    again = generate(kind, tmp_path / "b", seed=5, progress=False, **TINY[kind])
    other = generate(kind, tmp_path / "c", seed=6, progress=False, **TINY[kind])
    assert (tmp_path / "a" / "labels.csv").read_bytes() == (tmp_path / "b" / "labels.csv").read_bytes()
    assert pixel_hashes(first) == pixel_hashes(again)
    assert set(pixel_hashes(first)).isdisjoint(pixel_hashes(other))

    dataset = read_constructed(tmp_path / "a")
    classes, splits = EXPECTED[kind]
    assert list(dataset.classes) == classes and dataset.kind == "image" and dataset.seed == 5
    sizes = TINY[kind]
    assert len(dataset) == sizes.get("n_images", sum(sizes.get(f"n_{s}", 0) for s in ("train", "val", "test")))
    assert {r.split for r in dataset.records} == splits
    assert {r.label for r in dataset.records} == set(classes)  # every class present
    for record in dataset.records:
        image = Image.open(dataset.image_path(record))
        assert image.mode == "RGB" and image.format == "PNG"


def test_needle_camelyon_masks_and_roi_fraction(tmp_path):
    params = {"n_images": 8, "image_size": 240, "roi_min": 0.01, "roi_max": 0.02}
    dataset = generate("needle_camelyon", tmp_path / "nc", seed=0, progress=False, **params)
    positives = [r for r in dataset.records if r.label == "positive"]
    assert len(positives) == 4
    for record in dataset.records:
        if record.label == "negative":
            assert record.mask is None
            continue
        mask = np.asarray(Image.open(dataset.mask_path(record)))
        assert mask.shape == (240, 240)
        assert 0.01 <= (mask > 0).mean() <= 0.02


def test_class_balance_at_default_counts():
    layout = common_module.plan(np.random.default_rng(0), 100, ["negative", "positive"], [0.49, 0.51], {"all": 1})
    assert sum(label == "positive" for label, _ in layout) == 51
    layout = common_module.plan(
        np.random.default_rng(0), 10, ["EMPTY", "50", "70", "80"], [0.4, 0.2, 0.2, 0.2], {"train": 0.5, "test": 0.5}
    )
    for label in ["EMPTY", "50", "70", "80"]:
        assert {split for lab, split in layout if lab == label} <= {"train", "test"}
        assert sum(lab == label for lab, _ in layout) >= 1


def test_bad_parameters_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown synthetic kind"):
        generate("mars", tmp_path / "x", seed=0)
    with pytest.raises(ConfigError, match="construct.colour"):
        generate("colon", tmp_path / "x", seed=0, colour="red")
    with pytest.raises(ConfigError, match="construct.n_images"):
        generate("colon", tmp_path / "x", seed=0, n_images="many")
    with pytest.raises(ConfigError, match="construct.seed"):
        generate("colon", tmp_path / "x", seed=-1)
    with pytest.raises(ConfigError, match="construct.sign_min"):
        generate("traffic_signs", tmp_path / "x", seed=0, font_scale=2, sign_min=20)
    with pytest.raises(ConfigError, match="construct.distractors"):
        generate("traffic_signs", tmp_path / "x", seed=0, distractors="trucks")
    with pytest.raises(ConfigError, match="construct.glyph"):
        generate("traffic_signs", tmp_path / "x", seed=0, glyph="arrows")
    with pytest.raises(ConfigError, match="construct.pattern_side"):
        generate("traffic_signs", tmp_path / "x", seed=0, glyph="pattern", pattern_side=0.9)
    assert not (tmp_path / "x").exists()


def test_traffic_sign_options_change_the_signs_not_the_scene():
    """``font_scale: 2`` doubles the glyph (more dark ink inside the sign); ``distractors: other``
    puts blue mandatory signs or warning triangles where speed limits were."""
    params = {"image_size": [320, 240], "sign_min": 24, "sign_max": 28}
    small = render_one("traffic_signs", 0, 1, "50", "train", **params)
    large = render_one("traffic_signs", 0, 1, "50", "train", font_scale=2, **params)
    assert np.array_equal(small.objects, large.objects)
    cy, cx = small.objects[0].astype(int)

    def dark_pixels(pixels):
        return int((crop_padded(pixels, cy - 8, cx - 8, 16, 16).max(axis=2) < 90).sum())

    assert dark_pixels(large.pixels) > 2 * dark_pixels(small.pixels)

    def blue_pixels(pixels):
        p = pixels.astype(int)
        return int(((p[:, :, 2] > 100) & (p[:, :, 0] < 60)).sum())

    speed = [render_one("traffic_signs", 0, i, "EMPTY", "train", **params) for i in range(6)]
    other = [render_one("traffic_signs", 0, i, "EMPTY", "train", distractors="other", **params) for i in range(6)]
    assert sum(blue_pixels(r.pixels) for r in speed) == 0
    assert sum(blue_pixels(r.pixels) for r in other) > 0


def test_pattern_glyph_direction_is_the_class():
    """``glyph: pattern``: a 50 sign carries horizontal stripes (rows flat, columns alternating), a
    70 sign vertical ones; the deciding sign sits where the digits version puts it."""
    params = {"image_size": [320, 240], "sign_min": 28, "sign_max": 34}
    digits = render_one("traffic_signs", 0, 1, "50", "train", **params)
    for label, flat_axis in (("50", 1), ("70", 0)):
        drawn = render_one("traffic_signs", 0, 1, label, "train", glyph="pattern", **params)
        assert np.array_equal(drawn.objects, digits.objects)
        cy, cx = drawn.objects[0].astype(int)
        gray = crop_padded(drawn.pixels, cy - 6, cx - 6, 12, 12).astype(float).mean(axis=2)
        along = np.abs(np.diff(gray, axis=flat_axis)).mean()
        across = np.abs(np.diff(gray, axis=1 - flat_axis)).mean()
        assert across > 5 * along


def test_failed_generation_leaves_no_folder(tmp_path, monkeypatch):
    def broken_save(path, pixels, **options):
        raise OSError("disk full")

    monkeypatch.setattr(common_module, "write_png", broken_save)
    with pytest.raises(OSError):
        generate("fmow", tmp_path / "out", seed=0, progress=False, **TINY["fmow"])
    assert list(tmp_path.iterdir()) == []


def test_cli_construct_with_string_params(tmp_path):
    out = tmp_path / "ts"
    code = cli_main(["construct", "--source", "synthetic", "--kind", "traffic_signs", "--seed", "1",
                     "--out", str(out), "--name", "signs", "--param", "n_images=8", "--param", "image_size=160x120"])
    assert code == 0
    dataset = read_constructed(out)
    assert dataset.name == "signs" and len(dataset) == 8
    assert Image.open(dataset.image_path(dataset.records[0])).size == (160, 120)
    assert cli_main(["construct", "--source", "synthetic", "--kind", "colon", "--out", str(tmp_path / "y")]) == 1


def _gradient_features(gray: np.ndarray) -> np.ndarray:
    """|horizontal| and |vertical| neighbour differences: what a first conv layer + ReLU sees."""
    return np.concatenate([np.abs(np.diff(gray, axis=0)).ravel(), np.abs(np.diff(gray, axis=1)).ravel()])


def _cv_accuracy(features: list[np.ndarray], labels: list[bool]) -> float:
    x = np.array(features, dtype=np.float64)
    x = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-6)
    model = LogisticRegression(C=0.1, max_iter=500)
    return float(cross_val_score(model, x, labels, cv=5).mean())


def test_colon_needs_full_resolution():
    """Logistic regression on the 0.1 view (the CNN-low-res input), and on the same 27 px
    neighbourhood of a deciding/decoy nucleus seen at scale 0.2 (Zoom-In's stage-2 view), is near
    chance; on that neighbourhood at full resolution (a Zoom-In sub-tile) it is near perfect."""
    size, n = 250, 60
    pick = np.random.default_rng(0)
    low_view, low_crop, full_crop, labels = [], [], [], []
    for index in range(n):
        label = "positive" if index % 2 else "negative"
        drawn = render_one("colon", 11, index, label, "all", image_size=size)
        pixels = drawn.pixels
        low_view.append(resize_uint8(pixels, size // 10, size // 10).astype(np.float32).ravel())
        cy, cx = drawn.objects[pick.integers(len(drawn.objects))].astype(int)
        crop = crop_padded(pixels, cy - 15, cx - 15, 30, 30)
        gray_full = crop[1:28, 1:28].astype(np.float32).mean(axis=2)
        gray_low = resize_uint8(crop, 6, 6).astype(np.float32).mean(axis=2)
        full_crop.append(_gradient_features(gray_full))
        low_crop.append(np.concatenate([_gradient_features(gray_low), gray_low.ravel()]))
        labels.append(label == "positive")
    assert _cv_accuracy(low_view, labels) < 0.7
    assert _cv_accuracy(low_crop, labels) < 0.7
    assert _cv_accuracy(full_crop, labels) > 0.9


@pytest.mark.parametrize(
    "kind, classes, params, half, scale",
    [
        ("traffic_signs", ["50", "70", "80"], {"image_size": [320, 240]}, 8, 0.2),
        ("traffic_signs", ["50", "70", "80"], EMBEDDED_TRAFFIC, 12, 0.2),
        ("traffic_signs", ["50", "70", "80"], EMBEDDED_TRAFFIC, 12, 0.1),
        ("fmow", ["airport", "amusement_park", "aquaculture", "archaeological_site"], {"image_size": 128}, 10, 0.25),
    ],
)
def test_object_class_needs_full_resolution(kind, classes, params, half, scale):
    """Around the deciding object (a sign, a site), the pixels and neighbour differences of the
    low-resolution view (the whole image box-filtered to ``scale``, as the models see it) classify
    it poorly (chance: 1/3 and 1/4) while full-resolution neighbour differences classify it."""
    low, full, labels = [], [], []
    radius = int(round(half * scale))
    for index in range(60):
        label = classes[index % len(classes)]
        drawn = render_one(kind, 3, index, label, "train", **params)
        height, width = drawn.pixels.shape[:2]
        view = resize_uint8(drawn.pixels, int(round(height * scale)), int(round(width * scale)))
        vy, vx = (drawn.objects[0] * scale).astype(int)
        around = crop_padded(view, vy - radius, vx - radius, 2 * radius, 2 * radius).astype(np.float32)
        low.append(np.concatenate([around.ravel(), _gradient_features(around.mean(axis=2))]))
        cy, cx = drawn.objects[0].astype(int)
        crop = crop_padded(drawn.pixels, cy - half, cx - half, 2 * half, 2 * half)
        full.append(_gradient_features(crop.astype(np.float32).mean(axis=2)))
        labels.append(label)
    low_accuracy, full_accuracy = _cv_accuracy(low, labels), _cv_accuracy(full, labels)
    assert low_accuracy < 0.7 and full_accuracy > 0.9 and full_accuracy - low_accuracy > 0.3
