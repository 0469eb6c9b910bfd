"""The images of one run: train/val/test subsets backed by the dataset's view cache.

``load_run_data(views_h5, run, n_folds)`` reads the cache's own index (ids, labels, splits), asks
:mod:`zoomin.data.folds` for the run's split, and returns subsets whose ``image(i)`` is an
:class:`zoomin.image_access.ImageAccess`. Image objects are kept for the life of the subset, so an
image file is decoded once per run, not once per epoch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoomin.config.runs import parse_run
from zoomin.data.folds import run_split
from zoomin.data.view_cache import ViewCache
from zoomin.errors import ConfigError


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
            raise ConfigError("reference_class", f"'{name}' is not one of the classes {self.classes}")
        return self.classes.index(name)


def load_run_data(views: str | Path, run: str, n_folds: int | None = None) -> RunData:
    """The train/val/test subsets of ``run`` (``r<rep>f<fold>`` with ``n_folds`` folds, or ``s<seed>``)."""
    cache = ViewCache(views)
    dataset = cache.as_dataset()
    parsed = parse_run(run)
    split = run_split(
        dataset,
        fold=parsed.fold,
        repetition=parsed.repetition if parsed.cross_validation else parsed.seed,
        n_folds=n_folds if n_folds is not None else 10,
    )
    label_of = {record.image_id: dataset.label_index(record) for record in dataset.records}

    def subset(ids) -> Subset:
        return Subset(cache, list(ids), [label_of[i] for i in ids])

    return RunData(list(dataset.classes), subset(split.train), subset(split.val), subset(split.test))
