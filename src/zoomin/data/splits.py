"""The images of one run: train/val/test subsets backed by the dataset's view cache.

``load_run_data(views_h5, dataset_config, run)`` reads the cache's index, asks
:mod:`zoomin.data.folds` for the run's split, and returns subsets whose ``image(i)`` is an
:class:`zoomin.image_access.ImageAccess`. Image objects are kept for the life of the subset, so an
image file is decoded once per run, not once per epoch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoomin.config import parse_run
from zoomin.data.constructed import read_constructed
from zoomin.data.folds import run_split
from zoomin.data.view_cache import ViewCache


@dataclass
class Subset:
    """An ordered list of images of one split."""

    cache: ViewCache
    image_ids: list[str]
    labels: list[int]
    _images: dict[int, Any] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.image_ids)

    def image(self, i: int):
        if i not in self._images:
            self._images[i] = self.cache.image(self.image_ids[i])
        return self._images[i]

    def label(self, i: int) -> int:
        return self.labels[i]

    def image_id(self, i: int) -> str:
        return self.image_ids[i]


@dataclass
class RunData:
    classes: list[str]
    train: Subset
    val: Subset
    test: Subset

    def class_index(self, name: str | None) -> int | None:
        """Index of a class name (``None`` stays ``None``); unknown names are a config error."""
        if name is None:
            return None
        if name not in self.classes:
            from zoomin.errors import ConfigError

            raise ConfigError("reference_class", f"'{name}' is not one of the classes {self.classes}")
        return self.classes.index(name)


def load_run_data(views: str | Path, dataset_config: dict[str, Any], run: str) -> RunData:
    cache = ViewCache(views)
    constructed = read_constructed(cache.constructed_dir)
    parts = parse_run(run)
    runs = dataset_config["runs"]
    split = run_split(
        constructed,
        fold=parts.get("fold"),
        repetition=parts.get("repetition", parts.get("seed", 0)),
        n_folds=runs.get("folds", 10),
    )
    label_of = {record.image_id: constructed.label_index(record) for record in constructed.records}

    def subset(ids) -> Subset:
        return Subset(cache, list(ids), [label_of[i] for i in ids])

    return RunData(list(constructed.classes), subset(split.train), subset(split.val), subset(split.test))
