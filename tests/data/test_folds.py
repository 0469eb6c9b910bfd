"""Folds: stratified, disjoint, covering, deterministic, different per repetition; fixed splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from zoomin.data.constructed import ConstructedDataset, ImageRecord
from zoomin.data.folds import assign_folds, carve_validation, run_split
from zoomin.errors import ConfigError


def dataset(labels: list[str], splits: list[str]) -> ConstructedDataset:
    records = tuple(
        ImageRecord(f"im{i:03d}", f"images/im{i:03d}.png", label, split)
        for i, (label, split) in enumerate(zip(labels, splits))
    )
    return ConstructedDataset(Path("."), "toy", "image", ("neg", "pos", "other"), "test", None, None, records)


def cv_dataset(n_pos: int = 51, n_neg: int = 49) -> ConstructedDataset:
    labels = ["pos"] * n_pos + ["neg"] * n_neg
    order = np.random.default_rng(0).permutation(len(labels))
    return dataset([labels[i] for i in order], ["all"] * len(labels))


def test_assign_folds_is_stratified_balanced_and_deterministic():
    labels = ["a"] * 51 + ["b"] * 49 + ["c"] * 7
    folds = assign_folds(labels, 10, 0)
    assert set(folds.tolist()) == set(range(10))
    sizes = np.bincount(folds, minlength=10)
    assert sizes.max() - sizes.min() <= 1
    for label in "abc":
        per_fold = np.bincount(folds[np.array(labels) == label], minlength=10)
        assert per_fold.max() - per_fold.min() <= 1
    assert np.array_equal(folds, assign_folds(labels, 10, 0))
    assert not np.array_equal(folds, assign_folds(labels, 10, 1))


def test_cv_runs_are_disjoint_and_cover_everything():
    data = cv_dataset()
    ids = set(data.image_ids)
    tests = []
    for fold in range(10):
        split = run_split(data, fold=fold, repetition=2, n_folds=10)
        train, val, test = set(split.train), set(split.val), set(split.test)
        assert not (train & val or train & test or val & test)
        assert train | val | test == ids
        assert len(test) in (10, 11) and len(val) in (8, 9, 10)  # 10% of the other folds, per class
        tests.append(test)
    assert set().union(*tests) == ids and sum(map(len, tests)) == len(ids)
    first = run_split(data, fold=0, repetition=0)
    assert first == run_split(data, fold=0, repetition=0)
    assert set(first.test) != set(run_split(data, fold=0, repetition=1).test)


def test_cv_with_fewer_images_than_folds():
    data = cv_dataset(n_pos=4, n_neg=3)
    split = run_split(data, fold=0, repetition=0, n_folds=5)
    assert set(split.train) | set(split.val) | set(split.test) == set(data.image_ids)


def test_cv_refuses_bad_folds():
    data = cv_dataset(10, 10)
    with pytest.raises(ConfigError):
        run_split(data, fold=None)
    with pytest.raises(ConfigError):
        run_split(data, fold=10, n_folds=10)
    with pytest.raises(ConfigError):
        run_split(data, fold=0, n_folds=1)


def test_fixed_split_uses_the_split_column():
    labels = ["neg", "pos"] * 10
    splits = ["train"] * 12 + ["val"] * 4 + ["test"] * 4
    data = dataset(labels, splits)
    split = run_split(data, fold=None, repetition=3)
    assert split.train == tuple(data.image_ids[:12])
    assert split.val == tuple(data.image_ids[12:16])
    assert split.test == tuple(data.image_ids[16:])
    with pytest.raises(ConfigError):
        run_split(data, fold=1)


def test_fixed_split_without_val_carves_a_stratified_one():
    labels = (["neg"] * 30 + ["pos"] * 10) + ["neg", "pos"] * 5
    splits = ["train"] * 40 + ["test"] * 10
    data = dataset(labels, splits)
    split = run_split(data, repetition=0, val_fraction=0.2)
    assert set(split.test) == set(data.image_ids[40:])
    assert set(split.train) | set(split.val) == set(data.image_ids[:40])
    assert not set(split.train) & set(split.val)
    label_of = {r.image_id: r.label for r in data.records}
    assert sorted(label_of[i] for i in split.val) == ["neg"] * 6 + ["pos"] * 2
    assert split == run_split(data, repetition=0, val_fraction=0.2)
    assert set(split.val) != set(run_split(data, repetition=1, val_fraction=0.2).val)


def test_carve_keeps_singletons_in_train():
    train, val = carve_validation(["a", "b", "c"], ["x", "y", "y"], 0.5, 0)
    assert "a" in train and len(val) == 1 and set(train) | set(val) == {"a", "b", "c"}
