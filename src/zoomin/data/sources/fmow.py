"""fMoW (Functional Map of the World, RGB), the paper's 10-class subset.

Raw layout (the public bucket ``s3://spacenet-dataset/Hosted-Datasets/fmow/fmow-rgb/``, read
through its public HTTPS endpoint; only the files the subset needs are fetched)::

    manifest.json.bz2                                      JSON list of keys below the prefix
    {train,val}/<category>/<category>_<id>/<category>_<id>_<n>_rgb.jpg
    {train,val}/<category>/<category>_<id>/<category>_<id>_<n>_rgb.json

Each ``_rgb.jpg`` is one image, labelled by its category. The ``_rgb.json`` metadata has
``bounding_boxes``, a list of (or one) ``{"box": [x, y, w, h], "category": ...}`` with a top-left
origin; the boxes become the image's mask. The subset is ``n_train`` (1,500) training images drawn
at random (``seed``) from the training images of ``classes``, and every val image of those classes
as the test split. The draw depends only on the sorted candidate keys and the seed, so download and
construction, run separately, pick the same images.
"""

from __future__ import annotations

import bz2
import json
import logging
import random
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Any

from tqdm import tqdm

from zoomin.data.constructed import staged_folder
from zoomin.data.download import download_file
from zoomin.data.sources import Source, common
from zoomin.errors import InputFileError

log = logging.getLogger(__name__)

NAME = "fmow"
BASE_URL = "https://spacenet-dataset.s3.amazonaws.com/Hosted-Datasets/fmow/fmow-rgb"
MANIFEST = "manifest.json.bz2"
CLASSES = [
    "airport",
    "amusement_park",
    "aquaculture",
    "archaeological_site",
    "barn",
    "border_checkpoint",
    "burial_site",
    "car_dealership",
    "construction_site",
    "crop_field",
]
N_TRAIN = 1500
SUFFIX = "_rgb.jpg"
SPLIT_OF = {"train": "train", "val": "test"}


def read_manifest(path: str | Path) -> list[str]:
    """All keys listed in a ``manifest.json.bz2`` (a JSON list of keys, or an object of such lists).

    Keys are returned relative to the ``fmow-rgb/`` prefix.
    """
    path = Path(path)
    try:
        with bz2.open(path, "rt", encoding="utf-8") as handle:
            content = json.load(handle)
    except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputFileError(path, f"not a bzip2-compressed JSON manifest ({error})") from None
    if isinstance(content, dict):
        lists = list(content.values())
    else:
        lists = [content]
    keys = []
    for items in lists:
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            raise InputFileError(path, "expected a JSON list of file keys (or an object of such lists)")
        keys.extend(items)
    return [_relative_key(key) for key in keys]


def _relative_key(key: str) -> str:
    parts = PurePosixPath(key.lstrip("/")).parts
    if "fmow-rgb" in parts:
        parts = parts[parts.index("fmow-rgb") + 1 :]
    return "/".join(parts)


def local_keys(raw_dir: str | Path) -> list[str]:
    """Keys of the ``_rgb.jpg`` files already under ``raw_dir/{train,val}``."""
    raw_dir = Path(raw_dir)
    keys = []
    for split in SPLIT_OF:
        if (raw_dir / split).is_dir():
            keys.extend(p.relative_to(raw_dir).as_posix() for p in (raw_dir / split).rglob(f"*{SUFFIX}"))
    return keys


def select_subset(
    keys: list[str], classes: Sequence[str], n_train: int, seed: int
) -> list[tuple[str, str, str]]:
    """``(key, category, split)`` of the subset: ``n_train`` random train images + all val images."""
    wanted = set(classes)
    candidates: dict[str, list[tuple[str, str]]] = {"train": [], "val": []}
    for key in sorted(set(keys)):
        parts = key.split("/")
        if len(parts) < 4 or not key.endswith(SUFFIX) or parts[0] not in candidates:
            continue
        if parts[1] in wanted:
            candidates[parts[0]].append((key, parts[1]))
    train = candidates["train"]
    if n_train < len(train):
        train = sorted(random.Random(seed).sample(train, n_train))
    elif n_train > len(train):
        log.warning("asked for %d training images, only %d available", n_train, len(train))
    return [(key, cat, "train") for key, cat in train] + [(key, cat, "test") for key, cat in candidates["val"]]


def _candidates(raw_dir: Path) -> list[str]:
    manifest = raw_dir / MANIFEST
    return read_manifest(manifest) if manifest.is_file() else local_keys(raw_dir)


def download(
    raw_dir: str | Path,
    *,
    base_url: str = BASE_URL,
    classes: Sequence[str] = tuple(CLASSES),
    n_train: int = N_TRAIN,
    seed: int = 0,
    workers: int = 8,
    retries: int = 3,
) -> Path:
    """Fetch the manifest, then the ``_rgb.jpg`` + ``_rgb.json`` of every image of the subset.

    ``classes``, ``n_train`` and ``seed`` must be the construction's (:data:`SOURCE` says so), so
    that the download fetches exactly the images the construction picks.
    """
    raw_dir = Path(raw_dir)
    base_url = base_url.rstrip("/")
    download_file(f"{base_url}/{MANIFEST}", raw_dir / MANIFEST, retries=retries)
    subset = select_subset(read_manifest(raw_dir / MANIFEST), classes, n_train, seed)
    if not subset:
        raise InputFileError(raw_dir / MANIFEST, f"lists no {SUFFIX} images of the classes {classes}")
    keys = [key for key, _, _ in subset]
    keys += [key[: -len(".jpg")] + ".json" for key in keys]

    def fetch(key: str) -> None:
        download_file(f"{base_url}/{key}", raw_dir / key, retries=retries, progress=False)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for _ in tqdm(pool.map(fetch, keys), total=len(keys), desc="fmow files", unit="file"):
            pass
    return raw_dir


def read_boxes(path: str | Path, category: str) -> list[tuple[float, float, float, float]]:
    """``(x0, y0, x1, y1)`` boxes of ``category`` (all boxes if none is tagged) from an ``_rgb.json``."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "metadata file not found")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputFileError(path, f"not valid JSON ({error})") from None
    entries = meta.get("bounding_boxes") if isinstance(meta, dict) else None
    if entries is None:
        raise InputFileError(path, "has no 'bounding_boxes'")
    if isinstance(entries, dict):
        entries = [entries]
    boxes, tagged = [], []
    for entry in entries:
        box = entry.get("box") if isinstance(entry, dict) else None
        if not isinstance(box, list) or len(box) != 4:
            raise InputFileError(path, f"bounding box {entry!r} has no 'box' = [x, y, w, h]")
        try:
            x, y, w, h = (float(v) for v in box)
        except (TypeError, ValueError):
            raise InputFileError(path, f"bounding box {box!r} is not numeric") from None
        corners = (x, y, x + w - 1, y + h - 1)
        boxes.append(corners)
        if entry.get("category") == category:
            tagged.append(corners)
    return tagged or boxes


def construct(
    raw_dir: str | Path,
    out_dir: str | Path,
    *,
    name: str = NAME,
    classes: Sequence[str] = tuple(CLASSES),
    n_train: int = N_TRAIN,
    seed: int = 0,
    masks: bool = True,
    verify_images: bool = True,
) -> list[dict[str, Any]]:
    """Build the fMoW subset in ``out_dir``: train = the random draw, test = all val images."""
    raw_dir = Path(raw_dir)
    subset = select_subset(_candidates(raw_dir), classes, n_train, seed)
    if not subset:
        raise InputFileError(
            raw_dir, f"holds no {{train,val}}/<category>/.../*{SUFFIX} images of the classes {list(classes)}"
        )
    records = []
    with staged_folder(out_dir) as stage:
        for key, category, split in tqdm(subset, desc="fmow", unit="image"):
            image = raw_dir / key
            if not image.is_file():
                raise InputFileError(
                    image, "image of the subset is missing; run `zoomin download-dataset --dataset fmow`"
                )
            boxes = read_boxes(image.with_name(image.name[: -len(".jpg")] + ".json"), category)
            image_id = common.safe_id(f"{PurePosixPath(key).parts[0]}_{image.name[: -len(SUFFIX)]}")
            size = common.check_image(image) if verify_images else common.image_size(image)
            record = {
                "image_id": image_id,
                "path": common.place_file(image, stage, f"images/{image_id}.jpg"),
                "label": category,
                "split": split,
            }
            if masks:
                record["mask"] = common.write_box_mask(stage, f"masks/{image_id}.png", size, boxes)
            records.append(record)
        common.save_constructed(stage, name, classes, records, NAME, seed=seed)
    return records


# The download draws the same training images as the construction: it needs the same options.
SOURCE = Source(NAME, "image", construct, download, ("classes", "n_train", "seed"))
