"""Train/validation/test image ids for one run: stratified k-fold CV or the dataset's fixed split.

Cross-validation (every record has split ``all``, e.g. the colon dataset: 10 folds x 5 repetitions):
:func:`assign_folds` deals the images of each class, in an order shuffled by a generator seeded
from ``(n_folds, repetition)``, round-robin onto the folds, so folds are stratified, disjoint, cover
every image, differ between repetitions and do not depend on anything but those two numbers and the
labels. For run ``(fold, repetition)`` the test set is fold ``fold``; a stratified ``val_fraction``
of the other folds is the validation set (carved as for fixed splits, below) and the rest is the
training set. (Taking a whole fold for validation would leave a third of the images for training
with three folds.)

Fixed splits (``train``/``val``/``test`` in ``labels.csv``): the split column decides; when there is
no ``val`` split a stratified ``val_fraction`` of ``train`` is carved out deterministically (seeded by
``repetition``).

A small round-robin deal is used instead of scikit-learn's ``StratifiedKFold`` because it must also
work for the tiny test configurations (classes with fewer images than folds), where scikit-learn
refuses or warns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from zoomin.data.constructed import ConstructedDataset
from zoomin.data.stratify import holdout_counts, stratified_split
from zoomin.errors import ConfigError

_FOLD_STREAM = 0x5F01D  # separates the fold generator from every other seeded stream
_VAL_STREAM = 0x7A1


@dataclass(frozen=True)
class RunSplit:
    """Image ids of the three sets of one run (each in ``labels.csv`` order)."""

    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]


def assign_folds(labels: Sequence[str], n_folds: int, repetition: int) -> np.ndarray:
    """Fold index (0..n_folds-1) of each item, stratified by ``labels``; deterministic."""
    if n_folds < 2:
        raise ConfigError("runs.folds", f"need at least 2 folds, got {n_folds}")
    if repetition < 0:
        raise ConfigError("runs.repetitions", f"repetition must be >= 0, got {repetition}")
    rng = np.random.default_rng([_FOLD_STREAM, n_folds, repetition])
    labels = list(labels)
    folds = np.full(len(labels), -1, dtype=np.int64)
    offset = 0
    for label in sorted(set(labels)):
        members = np.flatnonzero(np.array([item == label for item in labels]))
        members = rng.permutation(members)
        folds[members] = (offset + np.arange(len(members))) % n_folds
        offset = (offset + len(members)) % n_folds  # keep fold sizes balanced across classes
    return folds


def run_split(
    dataset: ConstructedDataset,
    fold: int | None = None,
    repetition: int = 0,
    n_folds: int = 10,
    val_fraction: float = 0.1,
) -> RunSplit:
    """Train/val/test image ids of run ``(fold, repetition)`` of ``dataset``.

    ``fold`` is required for cross-validation datasets (split ``all``) and must be None or 0 for
    fixed-split datasets, whose ``repetition`` only seeds the carving of a validation set.
    """
    ids = dataset.image_ids
    labels = [record.label for record in dataset.records]
    splits = [record.split for record in dataset.records]
    if all(split == "all" for split in splits):
        return _cv_split(ids, labels, fold, repetition, n_folds, val_fraction)
    if fold not in (None, 0):
        raise ConfigError(
            "runs.folds", f"dataset '{dataset.name}' has fixed train/test splits; folds do not apply"
        )
    test = tuple(i for i, split in zip(ids, splits) if split == "test")
    train = [i for i, split in zip(ids, splits) if split == "train"]
    val = [i for i, split in zip(ids, splits) if split == "val"]
    if not val:
        train_labels = [label for i, label, split in zip(ids, labels, splits) if split == "train"]
        train, val = carve_validation(train, train_labels, val_fraction, repetition)
    return RunSplit(train=tuple(train), val=tuple(val), test=test)


def carve_validation(
    ids: Sequence[str], labels: Sequence[str], fraction: float, repetition: int
) -> tuple[list[str], list[str]]:
    """Split ``ids`` into (train, val) with about ``fraction`` of each class in val, deterministically.

    Classes with at least two images give at least one image to val (and keep at least one in
    train); order is preserved. The draw is :func:`zoomin.data.stratify.stratified_split`'s.
    """
    if not 0.0 < fraction < 1.0:
        raise ConfigError("val_fraction", f"must be in (0, 1), got {fraction}")
    rng = np.random.default_rng([_VAL_STREAM, repetition])
    split = stratified_split(labels, {"val": fraction, "train": 1.0 - fraction}, rng, holdout_counts)
    return [i for i, s in zip(ids, split) if s == "train"], [i for i, s in zip(ids, split) if s == "val"]


def _cv_split(
    ids: list[str], labels: list[str], fold: int | None, repetition: int, n_folds: int, val_fraction: float
) -> RunSplit:
    if fold is None or not 0 <= fold < n_folds:
        raise ConfigError("runs.folds", f"fold must be in 0..{n_folds - 1}, got {fold}")
    folds = assign_folds(labels, n_folds, repetition)
    rest = [(i, label) for i, label, f in zip(ids, labels, folds) if f != fold]
    train, val = carve_validation([i for i, _ in rest], [label for _, label in rest], val_fraction, repetition)
    return RunSplit(
        train=tuple(train), val=tuple(val), test=tuple(i for i, f in zip(ids, folds) if f == fold)
    )
