"""The source registry and the one option coercion every builder's options go through."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pytest
from PIL import Image

from zoomin.atomic import write_png
from zoomin.data import sources
from zoomin.data.constructed import read_constructed
from zoomin.data.options import coerce_params, coerce_value, option_names, parse_pairs
from zoomin.data.sources import (
    SOURCES,
    Source,
    construct_dataset,
    download_dataset,
    download_options,
    get_source,
)
from zoomin.data.sources.common import check_image
from zoomin.data.stratify import holdout_counts, largest_remainder, stratified_split
from zoomin.errors import ConfigError

KINDS = {
    "synthetic": "image",
    "synthetic_camelyon16": "slide",
    "colon_cancer": "image",
    "traffic_signs": "image",
    "fmow": "image",
    "camelyon16": "slide",
    "needle_camelyon": "image",
    "image_folder": "image",
    "slide_folder": "slide",
}
DOWNLOADABLE = {"synthetic_camelyon16", "colon_cancer", "traffic_signs", "fmow", "camelyon16", "needle_camelyon"}


# -- the registry -----------------------------------------------------------------------------------


def test_every_source_is_registered_with_its_kind_and_download():
    assert {name: source.kind for name, source in SOURCES.items()} == KINDS
    assert {name for name, source in SOURCES.items() if source.download is not None} == DOWNLOADABLE
    assert all(isinstance(source, Source) and source.name == name for name, source in SOURCES.items())
    assert SOURCES["needle_camelyon"].download is SOURCES["camelyon16"].download
    assert SOURCES["synthetic_camelyon16"].construct is SOURCES["camelyon16"].construct  # built as Camelyon16 is
    assert get_source("fmow").download_params_from_construct == ("classes", "n_train", "seed")


def test_unknown_source_names_the_known_ones():
    with pytest.raises(ConfigError, match="unknown source 'imagenet'.*camelyon16") as error:
        get_source("imagenet")
    assert error.value.key == "source"
    with pytest.raises(ConfigError, match="nothing to download.*fmow"):
        download_dataset("image_folder", "unused", {})


@pytest.mark.parametrize("name", sorted(KINDS))
def test_every_option_annotation_is_supported(name):
    """Each builder's defaults convert to their own annotation (an unsupported one raises TypeError)."""
    import inspect
    from typing import get_type_hints

    source = get_source(name)
    for function in filter(None, (source.construct, source.download)):
        hints = get_type_hints(function)
        for option in option_names(function):
            default = inspect.signature(function).parameters[option].default
            assert option in hints, f"{name}: option {option} has no type annotation"
            converted = coerce_value(f"construct.{option}", default, hints[option])
            assert converted == default or list(converted) == list(default)


def test_download_options_take_the_shared_construction_options():
    construct = {"classes": "a,b", "n_train": 10, "seed": 3, "masks": False}
    assert download_options("fmow", construct, {"workers": 2, "seed": 4}) == {
        "classes": "a,b", "n_train": 10, "seed": 4, "workers": 2
    }
    assert download_options("colon_cancer", {"masks": False}, {"retries": 0}) == {"retries": 0}
    assert download_options("camelyon16", {"limit": 1}, {}) == {}


def test_construct_dataset_converts_string_options(tmp_path):
    params = {"kind": "colon", "seed": "0", "n_images": "4", "image_size": "128"}
    construct_dataset("synthetic", None, tmp_path / "a", name="mine", params=params)
    dataset = read_constructed(tmp_path / "a")
    assert dataset.name == "mine" and len(dataset) == 4 and dataset.seed == 0
    with pytest.raises(ConfigError, match="construct.colour.*does not take colour"):
        construct_dataset("synthetic", None, tmp_path / "b", params={"kind": "colon", "seed": 0, "colour": "red"})
    with pytest.raises(ConfigError, match="construct.seed"):
        construct_dataset("synthetic", None, tmp_path / "b", params={"kind": "colon", "seed": "zero"})
    with pytest.raises(ConfigError, match="construct.verify_images.*true or false"):
        construct_dataset("colon_cancer", tmp_path, tmp_path / "b", params={"verify_images": "maybe"})
    with pytest.raises(ConfigError, match="construct.colour.*it takes: name, masks, mask_radius, verify_images"):
        construct_dataset("colon_cancer", tmp_path, tmp_path / "b", params={"colour": "red"})
    assert not (tmp_path / "b").exists()


def test_download_dataset_converts_options_and_writes_the_marker_last(tmp_path, monkeypatch):
    seen = {}

    def download(raw_dir: Path, *, n: int = 1, names: Sequence[str] = ("a",), fast: bool = False) -> None:
        seen.update(marker_during=(raw_dir / ".complete").exists(), n=n, names=names, fast=fast)

    monkeypatch.setitem(sources.SOURCES, "fake", Source("fake", "image", lambda *a, **k: None, download))
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / ".complete").write_text("{}")  # from an earlier download: removed before downloading again
    download_dataset("fake", raw, {"n": "3", "names": "x, y", "fast": "yes"})
    assert seen == {"marker_during": False, "n": 3, "names": ["x", "y"], "fast": True}
    marker = json.loads((raw / ".complete").read_text())
    assert marker["dataset"] == "fake" and marker["params"] == {"n": "3", "names": "x, y", "fast": "yes"}
    with pytest.raises(ConfigError, match="download.speed.*it takes: n, names, fast"):
        download_dataset("fake", raw, {"speed": 2})
    with pytest.raises(ConfigError, match="download.n.*integer"):
        download_dataset("fake", raw, {"n": "3.5"})


# -- the coercion -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, annotation, expected",
    [
        ("3", int, 3),
        (3.0, int, 3),
        ("1e3", int, 1000),
        ("0.5", float, 0.5),
        (2, float, 2.0),
        ("off", bool, False),
        ("Yes", bool, True),
        (1, bool, True),
        (12, str, "12"),
        ("a, b,,c", list[str], ["a", "b", "c"]),
        (["a", 1], list[str], ["a", "1"]),
        ("", list[str], []),
        ("0.6,0.2,0.2", Sequence[float], [0.6, 0.2, 0.2]),
        ("640x480", list[int], [640, 480]),
        ("[320, 240]", list[int], [320, 240]),
        ("Auto", Literal["auto", "xml"], "auto"),
        ("none", int | None, None),
        (None, int | None, None),
        ("7", int | None, 7),
        ("train,test", Sequence[Literal["train", "test"]], ["train", "test"]),
        ("x/y", Path, Path("x/y")),
        (Path("x"), str, "x"),
    ],
)
def test_coerce_value(value, annotation, expected):
    assert coerce_value("construct.k", value, annotation) == expected


@pytest.mark.parametrize(
    "value, annotation, problem",
    [
        ("many", int, "integer"),
        (3.5, int, "integer"),
        (True, int, "integer"),
        ("x", float, "number"),
        (False, float, "number"),
        ("maybe", bool, "true or false"),
        (2, bool, "true or false"),
        (["a"], str, "string"),
        ("jpg", Literal["auto", "xml"], "one of auto, xml"),
        ("a,b", list[int], "integer"),
        (3, list[str], "list"),
        ("train,val", Sequence[Literal["train", "test"]], "one of train, test"),
    ],
)
def test_bad_values_name_the_key(value, annotation, problem):
    with pytest.raises(ConfigError, match=problem) as error:
        coerce_value("construct.k", value, annotation)
    assert error.value.key == "construct.k"


def test_coerce_params_reads_the_keyword_only_signature():
    def builder(raw_dir, out_dir, *, size: int = 1, tags: Sequence[str] = ()) -> None: ...

    assert option_names(builder) == ["size", "tags"]
    assert coerce_params(builder, {"size": "2", "tags": "a,b"}, "construct", "x") == {"size": 2, "tags": ["a", "b"]}
    with pytest.raises(ConfigError, match="construct.raw_dir"):  # the folders are not options
        coerce_params(builder, {"raw_dir": "x"}, "construct", "x")

    def open_ended(raw_dir, out_dir, *, size: int = 1, **rest) -> None: ...

    assert coerce_params(open_ended, {"size": "2", "other": "3"}, "construct", "x") == {"size": 2, "other": "3"}


def test_parse_pairs():
    assert parse_pairs(["a=1", " b = x=y "]) == {"a": "1", "b": "x=y"}
    assert parse_pairs(None) == {}
    with pytest.raises(ConfigError, match="key=value"):
        parse_pairs(["novalue"])


# -- stratified split, PNG writer, big images -------------------------------------------------------


def test_stratified_split_deals_each_class_by_the_count_rule():
    labels = ["a"] * 7 + ["b"] * 3 + ["c"]
    split = stratified_split(labels, {"val": 0.3, "train": 0.7}, np.random.default_rng(0), holdout_counts)
    assert [split[:7].count("val"), split[7:10].count("val"), split[10:].count("val")] == [2, 1, 0]
    again = stratified_split(labels, {"val": 0.3, "train": 0.7}, np.random.default_rng(0), holdout_counts)
    assert split == again
    three = stratified_split(labels, {"x": 0.6, "y": 0.2, "z": 0.2}, np.random.default_rng(1), largest_remainder)
    assert sorted(three[:7]) == ["x"] * 3 + ["y"] * 2 + ["z"] * 2  # 1 each, then 4 by largest remainder
    assert holdout_counts(10, [0.0, 1.0]) == [0, 10] and holdout_counts(2, [0.9, 0.1]) == [1, 1]
    assert largest_remainder(100, [0.49, 0.51]) == [49, 51]


def test_write_png_is_atomic(tmp_path):
    target = tmp_path / "sub" / "a.png"
    write_png(target, np.full((4, 5), 200, dtype=np.uint8))
    assert np.asarray(Image.open(target)).shape == (4, 5)
    with pytest.raises(OSError):  # PNG has no 32-bit float mode: the save fails half-way
        write_png(target, np.zeros((4, 5), dtype=np.float32))
    assert np.asarray(Image.open(target)).max() == 200  # the old file is untouched
    assert [p.name for p in target.parent.iterdir()] == ["a.png"]  # no temporary file left


def test_the_big_image_limit_is_lifted_only_while_a_source_reads_an_image(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)  # so that a 4x5 image counts as big
    path = tmp_path / "big.png"
    Image.new("RGB", (5, 4)).save(path)
    assert check_image(path) == (4, 5)
    assert Image.MAX_IMAGE_PIXELS == 10
    with pytest.warns(Image.DecompressionBombWarning):
        Image.open(path).close()


def test_slide_train_val_split_is_stratified_seeded_and_order_free():
    from zoomin.data.sources.slides import train_val_split

    labels = {f"n{k}": "negative" for k in range(5)} | {f"t{k}": "positive" for k in range(3)} | {"x": "other"}
    split = train_val_split(labels, 0.34, seed=1)
    assert split == train_val_split(dict(reversed(list(labels.items()))), 0.34, seed=1)
    by_class = {c: sorted(split[n] for n in labels if labels[n] == c) for c in ("negative", "positive", "other")}
    expected = {"negative": ["train"] * 3 + ["val"] * 2, "positive": ["train"] * 2 + ["val"], "other": ["train"]}
    assert by_class == expected
    assert train_val_split(labels, 0.9, seed=1)["x"] == "train"  # a class of one slide is never all in val
    assert set(train_val_split(labels, 0.0, seed=1).values()) == {"train"}
