"""history.csv, written without pandas, reads back as pandas wrote it (the same bytes for every run
that records all columns)."""

from __future__ import annotations

import math

import pandas as pd

from zoomin.training.loop import write_history

ROWS = [
    {"epoch": 1, "train_loss": 0.6931471805599453, "val_accuracy": math.nan, "lr": 0.001, "mean_entropy": -1.2e-05,
     "mean_unique_tiles": math.nan, "steps": 15, "images_seen": 60, "train_gmacs": 0.1234567},
    {"epoch": 2, "train_loss": 0.5, "val_accuracy": 0.875, "lr": 1e-4, "mean_entropy": 2.0,
     "mean_unique_tiles": 4.5, "steps": 30, "images_seen": 120, "train_gmacs": 0.2469134},
]


def _pandas_history(rows, seed, path):
    frame = pd.DataFrame(rows)
    frame.insert(0, "seed", seed)
    frame.to_csv(path, index=False)


def test_same_bytes_as_pandas(tmp_path):
    write_history(ROWS, 3, tmp_path / "ours.csv")
    _pandas_history(ROWS, 3, tmp_path / "pandas.csv")
    assert (tmp_path / "ours.csv").read_text() == (tmp_path / "pandas.csv").read_text()
    assert (tmp_path / "ours.csv").read_text().splitlines()[1].startswith("3,1,0.6931471805599453,,0.001,")


def test_a_resumed_run_without_the_later_columns_reads_back_the_same(tmp_path):
    """Rows restored from a checkpoint written before a column existed lack it: an empty field."""
    rows = [{k: v for k, v in ROWS[0].items() if k not in ("steps", "images_seen")}, ROWS[1]]
    write_history(rows, 0, tmp_path / "ours.csv")
    _pandas_history(rows, 0, tmp_path / "pandas.csv")
    ours, theirs = pd.read_csv(tmp_path / "ours.csv"), pd.read_csv(tmp_path / "pandas.csv")
    pd.testing.assert_frame_equal(ours, theirs)
    assert math.isnan(ours.steps.iloc[0]) and ours.steps.iloc[1] == 30
