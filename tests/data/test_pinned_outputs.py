"""Pinned outputs: the synthetic stand-ins' plan and bytes and the cross-validation folds.

The project's Table 1 numbers depend on exactly which images each stand-in draws, which split each
lands in and which images form each fold's train/val/test sets. The expected values below were
captured from the code before the stratified split was shared (zoomin.data.stratify); a change
that moves any of them changes the reported results and must be deliberate.
"""

from __future__ import annotations

import hashlib

import numpy as np

from zoomin.data.folds import assign_folds, carve_validation, run_split
from zoomin.data.synthetic import common, generate

TRAFFIC_ROWS = [
    ("EMPTY", "train"), ("50", "test"), ("EMPTY", "test"), ("70", "train"), ("50", "train"), ("80", "train"),
    ("70", "train"), ("80", "train"), ("80", "test"), ("50", "train"), ("70", "test"), ("EMPTY", "train"),
]
NEEDLE_MNIST_ROWS = [
    ("positive", "test"), ("negative", "val"), ("positive", "val"), ("negative", "train"), ("positive", "train"),
    ("positive", "val"), ("negative", "train"), ("positive", "train"), ("negative", "test"), ("negative", "val"),
]
COLON_ROWS = [
    ("positive", "all"), ("negative", "all"), ("negative", "all"), ("positive", "all"), ("positive", "all"),
    ("negative", "all"), ("negative", "all"), ("positive", "all"), ("negative", "all"), ("negative", "all"),
    ("positive", "all"), ("positive", "all"),
]
COLON_LABELS_SHA256 = "80cf03761d8fc919bc882833342023a0857961bb8c20fdc579862dffd85a914b"
# sha256 over the sha256 digests of every PNG (images and masks), sorted by path
COLON_PNGS_SHA256 = "a79607683febbb1d8ce8318587b2fc4cc245fdf78459347e19cd6706bae5402e"
# "(fold)/(repetition)": (train, val, test) image numbers of the 12-image colon stand-in, 3 folds
COLON_FOLDS = {
    "0/0": ([0, 2, 4, 5, 6, 10], [3, 9], [1, 7, 8, 11]),
    "1/0": ([1, 2, 4, 5, 10, 11], [7, 8], [0, 3, 6, 9]),
    "2/0": ([0, 1, 6, 7, 8, 11], [3, 9], [2, 4, 5, 10]),
    "0/1": ([2, 3, 4, 6, 7, 9], [1, 11], [0, 5, 8, 10]),
    "1/1": ([0, 3, 6, 8, 9, 10], [5, 11], [1, 2, 4, 7]),
    "2/1": ([0, 2, 4, 5, 7, 8], [1, 10], [3, 6, 9, 11]),
}
PLAN = [
    ("50", "train"), ("50", "test"), ("70", "test"), ("EMPTY", "train"), ("EMPTY", "test"), ("EMPTY", "train"),
    ("50", "val"), ("80", "train"), ("80", "test"), ("70", "train"), ("EMPTY", "val"),
]


def test_stand_in_plans_and_bytes_are_pinned(tmp_path):
    traffic = generate("traffic_signs", tmp_path / "ts", 2, progress=False, n_images=12, image_size=[160, 120],
                       glyph="pattern", sign_min=28, sign_max=34, distractors="other", empty_fraction=0.25)
    assert [(r.label, r.split) for r in traffic.records] == TRAFFIC_ROWS
    needle = generate("needle_mnist", tmp_path / "nm", 4, progress=False, n_images=10, image_size=128)
    assert [(r.label, r.split) for r in needle.records] == NEEDLE_MNIST_ROWS
    colon = generate("colon", tmp_path / "colon", 0, progress=False, n_images=12, image_size=128)
    assert [(r.label, r.split) for r in colon.records] == COLON_ROWS
    assert hashlib.sha256((tmp_path / "colon" / "labels.csv").read_bytes()).hexdigest() == COLON_LABELS_SHA256
    pngs = sorted((tmp_path / "colon").rglob("*.png"))
    digest = hashlib.sha256(b"".join(hashlib.sha256(p.read_bytes()).digest() for p in pngs)).hexdigest()
    assert digest == COLON_PNGS_SHA256

    for key, (train, val, test) in COLON_FOLDS.items():
        fold, repetition = map(int, key.split("/"))
        split = run_split(colon, fold, repetition, n_folds=3, val_fraction=0.1)
        names = [[f"colon_{i:05d}" for i in ids] for ids in (train, val, test)]
        assert [list(split.train), list(split.val), list(split.test)] == names, key


def test_plan_folds_and_carving_are_pinned():
    layout = common.plan(np.random.default_rng(0), 11, ["EMPTY", "50", "70", "80"], [0.4, 0.2, 0.2, 0.2],
                         {"train": 0.5, "val": 0.2, "test": 0.3})
    assert layout == PLAN
    labels = list("aabbbbbccccccccd")
    assert assign_folds(labels, 4, 2).tolist() == [1, 0, 3, 2, 1, 2, 0, 2, 0, 1, 1, 3, 3, 2, 0, 3]
    ids = [f"i{k:02d}" for k in range(len(labels))]
    train, val = carve_validation(ids, labels, 0.3, 5)
    assert val == ["i00", "i02", "i06", "i07", "i12"]
    assert train == ["i01", "i03", "i04", "i05", "i08", "i09", "i10", "i11", "i13", "i14", "i15"]
