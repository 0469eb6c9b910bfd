"""The parametric stand-in of the learnability sweep: the object's area is the ratio asked for, its
cue vanishes in the low-resolution views and not at full resolution, the drawing is deterministic
(and a cell's test images do not depend on its training-set size), a user's folder of backgrounds
is used, and bad parameters are refused naming their key."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

from zoomin.data.constructed import read_constructed
from zoomin.data.synthetic import generate, render_one
from zoomin.errors import ConfigError
from zoomin.image_access import crop_padded, resize_uint8

SMALL = {"n_train": 8, "n_val": 2, "n_test": 4, "image_size": 96, "ratio": 0.02}


def _hashes(dataset) -> dict[str, str]:
    return {
        r.image_id: hashlib.sha256(np.asarray(Image.open(dataset.image_path(r))).tobytes()).hexdigest()
        for r in dataset.records
    }


@pytest.mark.parametrize(
    "size, ratio, cell", [(96, 0.02, 1), (256, 0.04, 1), (256, 0.001, 1), (512, 0.0002, 1), (256, 0.01, 2)]
)
def test_object_area_is_the_ratio(size, ratio, cell):
    """Measured on the written mask; the object is a whole number of texture periods, so the ratio
    is met to half a period's area (at most 10 % at the smallest object the generator allows)."""
    period_share = (2 * cell) ** 2 / size**2
    for index in range(4):
        drawn = render_one("parametric", 0, index, "positive", "train", image_size=size, ratio=ratio, cue_cell=cell)
        measured = (drawn.mask > 0).mean()
        assert abs(measured - ratio) <= period_share / 2 + 1e-12
        assert abs(measured - ratio) <= 0.1 * ratio
        assert drawn.mask.shape == (size, size)
    assert render_one("parametric", 0, 0, "negative", "train", image_size=size, ratio=ratio, cue_cell=cell).mask is None


def test_generated_dataset_has_the_set_split_sizes_balanced_and_masks(tmp_path):
    dataset = generate("parametric", tmp_path / "p", seed=3, progress=False, **SMALL)
    assert list(dataset.classes) == ["negative", "positive"] and len(dataset) == 14
    for split, size in (("train", 8), ("val", 2), ("test", 4)):
        labels = [r.label for r in dataset.records if r.split == split]
        assert len(labels) == size and labels.count("positive") == size // 2
    for record in dataset.records:
        assert (record.mask is not None) == (record.label == "positive")
        if record.mask is not None:
            mask = np.asarray(Image.open(dataset.mask_path(record)))
            assert abs((mask > 0).mean() - 0.02) <= 0.1 * 0.02


@pytest.mark.parametrize("cell, scale", [(1, 1 / 4), (1, 1 / 8), (2, 1 / 4)])
def test_box_filtered_views_of_the_two_classes_are_identical(cell, scale):
    """A positive and a negative drawn from the same generator differ only by the checkerboard, and
    a box filter whose side is a multiple of its period (the 1/4 and 1/8 views) erases it exactly;
    at full resolution they differ inside the object."""
    for index in range(3):
        pos = render_one("parametric", 1, index, "positive", "train", image_size=128, ratio=0.02, cue_cell=cell)
        neg = render_one("parametric", 1, index, "negative", "train", image_size=128, ratio=0.02, cue_cell=cell)
        side = int(128 * scale)
        assert np.array_equal(resize_uint8(pos.pixels, side, side), resize_uint8(neg.pixels, side, side))
        differs = np.any(pos.pixels != neg.pixels, axis=2)
        assert np.array_equal(differs, pos.mask > 0)


def _differences(gray: np.ndarray) -> np.ndarray:
    """|horizontal| and |vertical| neighbour differences: what a first conv layer + ReLU sees."""
    return np.concatenate([np.abs(np.diff(gray, axis=0)).ravel(), np.abs(np.diff(gray, axis=1)).ravel()])


def _cv_accuracy(features: list[np.ndarray], labels: list[bool]) -> float:
    x = np.array(features, dtype=np.float64)
    x = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-6)
    return float(cross_val_score(LogisticRegression(C=0.1, max_iter=500), x, labels, cv=5).mean())


@pytest.mark.parametrize("scale", [0.25, 0.2])
def test_the_cue_needs_full_resolution(scale):
    """Around the deciding region (the object or the decoy in its place), the pixels and neighbour
    differences of the low-resolution view (whole image box-filtered to ``scale``: 0.25 exactly
    erases the texture, 0.2 leaves a residue) classify near chance; full resolution near perfectly."""
    size, half, n = 128, 10, 60
    low, full, whole, labels = [], [], [], []
    radius = max(2, int(round(half * scale)))
    for index in range(n):
        label = "positive" if index % 2 else "negative"
        drawn = render_one("parametric", 5, index, label, "train", image_size=size, ratio=0.01)
        side = int(round(size * scale))
        view = resize_uint8(drawn.pixels, side, side)
        whole.append(view.astype(np.float32).ravel())
        cy, cx = drawn.objects[len(drawn.objects) // 2].astype(int)
        vy, vx = int(cy * scale), int(cx * scale)
        around = crop_padded(view, vy - radius, vx - radius, 2 * radius, 2 * radius).astype(np.float32)
        low.append(np.concatenate([around.ravel(), _differences(around.mean(axis=2))]))
        crop = crop_padded(drawn.pixels, cy - half, cx - half, 2 * half, 2 * half)
        full.append(_differences(crop.astype(np.float32).mean(axis=2)))
        labels.append(label == "positive")
    assert _cv_accuracy(whole, labels) < 0.7
    assert _cv_accuracy(low, labels) < 0.7
    assert _cv_accuracy(full, labels) > 0.9


def test_deterministic_and_a_cells_test_images_do_not_depend_on_its_training_size(tmp_path):
    first = _hashes(generate("parametric", tmp_path / "a", seed=7, progress=False, **SMALL))
    again = _hashes(generate("parametric", tmp_path / "b", seed=7, progress=False, **SMALL))
    other = _hashes(generate("parametric", tmp_path / "c", seed=8, progress=False, **SMALL))
    larger = generate("parametric", tmp_path / "d", seed=7, progress=False, **{**SMALL, "n_train": 16})
    assert first == again
    assert set(first.values()).isdisjoint(other.values())
    bigger = _hashes(larger)
    small = read_constructed(tmp_path / "a")
    for record in small.records:  # test, validation and the first 8 training images are the same
        assert bigger[record.image_id] == first[record.image_id]
    labels = {r.image_id: r.label for r in larger.records}
    assert all(labels[r.image_id] == r.label for r in small.records)
    assert (tmp_path / "a" / "labels.csv").read_bytes() == (tmp_path / "b" / "labels.csv").read_bytes()


def test_objects_on_a_folder_of_backgrounds(tmp_path):
    """With ``background``, each image is a crop of one of the folder's images (scaled up when
    smaller): outside the candidate regions its pixels are those of a background image."""
    folder = tmp_path / "mine"
    folder.mkdir()
    colours = {(200, 40, 40), (40, 40, 200)}
    for i, colour in enumerate(sorted(colours)):
        Image.new("RGB", (60 + 40 * i, 80), colour).save(folder / f"bg{i}.png")
    (folder / "notes.txt").write_text("not an image")
    seen = set()
    for index in range(8):
        label = "positive" if index % 2 else "negative"
        drawn = render_one("parametric", 0, index, label, "train", image_size=96, ratio=0.02, background=str(folder))
        values, counts = np.unique(drawn.pixels.reshape(-1, 3), axis=0, return_counts=True)
        colour = tuple(int(v) for v in values[counts.argmax()])
        assert colour in colours and counts.max() > 0.9 * 96 * 96  # all but the two regions
        seen.add(colour)
    assert seen == colours  # both backgrounds are used
    plain = render_one("parametric", 0, 1, "positive", "train", image_size=96, ratio=0.02)
    assert tuple(plain.pixels[0, 0]) not in colours


@pytest.mark.parametrize(
    "params, key",
    [
        ({"n_train": 7}, "construct.n_train"),
        ({"n_test": 0}, "construct.n_test"),
        ({"n_val": -2}, "construct.n_val"),
        ({"ratio": 0.3}, "construct.ratio"),  # two regions of 0.3 cover more than half the image
        ({"ratio": 0.0}, "construct.ratio"),
        ({"ratio": 0.00005}, "construct.ratio"),  # 3 px: under five periods of the texture
        ({"cue_cell": 3}, "construct.cue_cell"),
        ({"regions": 0}, "construct.regions"),
        ({"region_contrast": -1}, "construct.region_contrast"),
        ({"cue_amplitude": 0}, "construct.cue_amplitude"),
        ({"image_size": 16}, "construct.image_size"),
        ({"background": "/nonexistent/folder"}, "construct.background"),
        ({"radius": 3}, "construct.radius"),
        ({"ratio": "big"}, "construct.ratio"),
    ],
)
def test_bad_parameters_are_refused_naming_the_key(params, key, tmp_path):
    with pytest.raises(ConfigError) as caught:
        generate("parametric", tmp_path / "x", seed=0, progress=False, **params)
    assert caught.value.key == key
    assert not (tmp_path / "x").exists()


def test_an_empty_background_folder_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="holds no images") as caught:
        generate("parametric", tmp_path / "x", seed=0, progress=False, background=str(tmp_path / "empty"))
    assert caught.value.key == "construct.background"
