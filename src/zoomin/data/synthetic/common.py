"""What every synthetic stand-in shares: its description, parameter handling, planning and writing.

A stand-in is a :class:`StandIn`: default parameters, the class list, and a ``render`` function that
draws one image from its own generator. :func:`build` plans labels and splits from the seed, renders
each image from a generator seeded by ``(seed, index)`` (so one image never depends on another),
writes PNGs into a staged folder and finishes with :func:`zoomin.data.constructed.write_constructed`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from zoomin.atomic import write_png
from zoomin.data.constructed import (
    ConstructedDataset,
    ImageRecord,
    read_constructed,
    staged_folder,
    write_constructed,
)
from zoomin.data.options import coerce_value, refuse_unknown
from zoomin.data.stratify import largest_remainder, stratified_split
from zoomin.errors import ConfigError

log = logging.getLogger(__name__)

_PLAN_STREAM = 0x91A7  # the generator that plans labels and splits
_IMAGE_STREAM = 0x1A6E  # the generators that draw images
PNG_LEVEL = 1  # fast zlib level: stand-ins are regenerated often; changing it changes the file bytes


@dataclass
class Rendered:
    """One drawn image: ``pixels`` HxWx3 uint8, optional ``mask`` HxW uint8 (non-zero = object of
    interest), and ``objects``: full-resolution (y, x) centres of the objects that decide the class
    (targets in positives, their look-alike decoys in negatives). ``objects`` is not written to disk;
    tests use it to look at the right places."""

    pixels: np.ndarray
    mask: np.ndarray | None = None
    objects: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))


RenderFn = Callable[[np.random.Generator, str, str, dict[str, Any]], Rendered]


@dataclass(frozen=True)
class StandIn:
    """A synthetic stand-in for one of the paper's datasets."""

    kind: str
    defaults: Mapping[str, Any]
    classes: Callable[[dict[str, Any]], list[str]]
    class_weights: Callable[[dict[str, Any]], list[float]]
    split_fractions: Mapping[str, float]
    render: RenderFn
    check: Callable[[dict[str, Any]], None] = lambda params: None
    # (label, split) of every image from the seed and the parameters, for a stand-in whose splits
    # have set sizes (the parametric one); None: ``n_images`` dealt by ``class_weights`` and
    # ``split_fractions`` (:func:`plan`).
    layout: Callable[[int, dict[str, Any]], list[tuple[str, str]]] | None = None


def resolve_params(stand_in: StandIn, params: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults overridden by ``params``, each converted to its default's type.

    Values from the command line arrive as strings; they go through
    :func:`zoomin.data.options.coerce_value`, the conversion every builder's options use.
    """
    resolved = dict(stand_in.defaults)
    refuse_unknown(params, sorted(resolved), "construct", f"synthetic '{stand_in.kind}'")
    for key, value in params.items():
        resolved[key] = _typed(f"construct.{key}", value, resolved[key])
    if "n_images" in resolved and resolved["n_images"] < 2:
        raise ConfigError("construct.n_images", f"need at least 2 images, got {resolved['n_images']}")
    stand_in.check(resolved)
    return resolved


def _typed(key: str, value: Any, default: Any) -> Any:
    """``value`` as the type of ``default``; a list default is a size: ``[w, h]``, ``"640x480"`` or one number."""
    if isinstance(default, (list, tuple)):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = [value] * len(default)
        items = coerce_value(key, value, list[type(default[0])])
        if len(items) != len(default):
            raise ConfigError(key, f"expected {len(default)} values, got {value!r}")
        return items
    return coerce_value(key, value, type(default))


def plan(
    rng: np.random.Generator,
    n: int,
    classes: Sequence[str],
    weights: Sequence[float],
    split_fractions: Mapping[str, float],
) -> list[tuple[str, str]]:
    """(label, split) per image: class counts by ``weights``, shuffled, splits stratified by class."""
    labels = np.repeat(np.array(classes, dtype=object), largest_remainder(n, weights))
    labels = labels[rng.permutation(n)]
    splits = stratified_split(list(labels), split_fractions, rng, largest_remainder, classes=classes)
    return [(str(label), split) for label, split in zip(labels, splits)]


def image_rng(seed: int, index: int) -> np.random.Generator:
    """The generator that draws image ``index`` of a stand-in built from ``seed``."""
    return np.random.default_rng([_IMAGE_STREAM, seed, index])


def plan_rng(seed: int) -> np.random.Generator:
    return np.random.default_rng([_PLAN_STREAM, seed])


def build(
    stand_in: StandIn,
    out_dir: str | Path,
    seed: int,
    params: Mapping[str, Any],
    name: str | None = None,
    progress: bool = True,
) -> ConstructedDataset:
    """Generate the stand-in into ``out_dir`` (replaced atomically) and return the dataset.

    ``name`` is the dataset name written to ``dataset.json`` (default: the stand-in's kind).
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError("construct.seed", f"must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    resolved = resolve_params(stand_in, params)
    classes = stand_in.classes(resolved)
    if stand_in.layout is not None:
        layout = stand_in.layout(seed, resolved)
    else:
        layout = plan(
            plan_rng(seed),
            resolved["n_images"],
            classes,
            stand_in.class_weights(resolved),
            stand_in.split_fractions,
        )
    out_dir = Path(out_dir)
    log.info("synthetic %s: %d images into %s (seed %d)", stand_in.kind, len(layout), out_dir, seed)
    with staged_folder(out_dir) as staging:
        records = []
        for index, (label, split) in enumerate(
            tqdm(layout, desc=f"synthetic {stand_in.kind}", unit="img", disable=not progress)
        ):
            image_id = f"{stand_in.kind}_{index:05d}"
            drawn = stand_in.render(image_rng(seed, index), label, split, resolved)
            write_png(staging / "images" / f"{image_id}.png", drawn.pixels, compress_level=PNG_LEVEL)
            mask = None
            if drawn.mask is not None:
                mask = f"masks/{image_id}.png"
                write_png(staging / mask, drawn.mask, compress_level=PNG_LEVEL)
            records.append(ImageRecord(image_id, f"images/{image_id}.png", label, split, mask))
        write_constructed(
            staging,
            name or stand_in.kind,
            "image",
            classes,
            records,
            source=f"synthetic:{stand_in.kind}",
            seed=seed,
        )
    return read_constructed(out_dir)  # the folder has moved: read it from its final place
