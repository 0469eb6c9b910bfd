"""Swedish Traffic Signs, speed-limit subset (classes EMPTY / 50 / 70 / 80): Set1 train, Set2 test.

Raw layout::

    Set1/annotations.txt, Set1/<image>.jpg   (from Set1Part0.zip; 1280x960 JPEGs)
    Set2/annotations.txt, Set2/<image>.jpg

Each line of ``annotations.txt`` is ``file.jpg:sign;sign;...``; a sign is
``VISIBILITY, lrx, lry, ulx, uly, SIGN_TYPE, SIGN_NAME`` (lower-right corner first) or
``MISC_SIGNS``. The subset follows the rules of the attention-sampling paper's speed-limit dataset
(idiap/attention-sampling ``scripts/speed_limits.py``), re-implemented here:

* ``MISC_SIGNS`` entries are ignored; an image with no other sign is ``EMPTY``;
* otherwise only the 50/70/80 speed-limit signs count; an image with signs but none of those is
  dropped;
* those signs are ranked by visibility (VISIBLE, BLURRED, SIDE_ROAD, OCCLUDED), then by larger
  box area; if the best one is not VISIBLE the image is dropped, else it gives the label.

On the real data this gives 747 training and 684 test images. Coordinates that carry trailing
junk (e.g. ``"123.5l"``) are read up to the longest numeric prefix, as the original does.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from zoomin.data.constructed import staged_folder
from zoomin.data.download import download_file, extract_archive
from zoomin.data.sources import Source, common
from zoomin.errors import ConfigError, InputFileError

log = logging.getLogger(__name__)

NAME = "traffic_signs"
BASE_URL = "http://www.isy.liu.se/cvl/research/trafficSigns/swedishSignsSummer"
ANNOTATIONS_MD5 = {
    "Set1": "9106a905a86209c95dc9b51d12f520d6",
    "Set2": "09debbc67f6cd89c1e2a2688ad1d03ca",
}
VISIBILITIES = ("VISIBLE", "BLURRED", "SIDE_ROAD", "OCCLUDED")
SPEED_LIMITS = {"50_SIGN": "50", "70_SIGN": "70", "80_SIGN": "80"}
CLASSES = ["EMPTY", "50", "70", "80"]


@dataclass(frozen=True)
class Sign:
    """One annotated sign; the box is stored as in the file: lower-right, then upper-left corner."""

    visibility: str
    lrx: float
    lry: float
    ulx: float
    uly: float
    type: str
    name: str

    @property
    def area(self) -> float:
        return (self.lrx - self.ulx) * (self.lry - self.uly)

    @property
    def box(self) -> tuple[float, float, float, float]:
        """``(x0, y0, x1, y1)``."""
        return self.ulx, self.uly, self.lrx, self.lry

    def rank(self) -> tuple[int, float]:
        """Sort key: most visible first, then the largest box."""
        return VISIBILITIES.index(self.visibility), -self.area


def _number(text: str) -> float:
    """The longest numeric prefix of ``text`` (the annotations have values such as ``'97.5l'``)."""
    for end in range(len(text), 0, -1):
        try:
            return float(text[:end])
        except ValueError:
            continue
    raise ValueError(f"not a number: {text!r}")


def parse_annotations(path: str | Path) -> list[tuple[str, list[Sign], int]]:
    """Parse an ``annotations.txt``: ``(file name, signs without MISC_SIGNS, line number)`` per line.

    Blank lines are skipped; any other line that does not parse raises
    :class:`~zoomin.errors.InputFileError` naming the file and the line.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "annotations file not found")
    entries = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.strip()
            if not line:
                continue
            where = f"line {number}"
            if ":" not in line:
                raise InputFileError(path, f"{where}: expected 'file.jpg:sign;sign;...', got {line[:80]!r}")
            filename, rest = line.split(":", 1)
            filename = filename.strip()
            if not filename:
                raise InputFileError(path, f"{where}: empty file name")
            signs = []
            for item in rest.split(";"):
                if not item.strip():
                    continue
                parts = [part.strip() for part in item.split(",")]
                if parts[0] == "MISC_SIGNS":
                    continue
                if len(parts) < 7:
                    raise InputFileError(
                        path,
                        f"{where}: sign {item.strip()!r} does not have the 7 fields "
                        "'VISIBILITY, lrx, lry, ulx, uly, SIGN_TYPE, SIGN_NAME'",
                    )
                if parts[0] not in VISIBILITIES:
                    raise InputFileError(
                        path, f"{where}: unknown visibility {parts[0]!r} (expected one of {VISIBILITIES})"
                    )
                try:
                    lrx, lry, ulx, uly = (_number(value) for value in parts[1:5])
                except ValueError as error:
                    raise InputFileError(path, f"{where}: bad coordinate in sign {item.strip()!r}: {error}") from None
                signs.append(Sign(parts[0], lrx, lry, ulx, uly, parts[5], parts[6]))
            entries.append((filename, signs, number))
    if not entries:
        raise InputFileError(path, "contains no annotations")
    return entries


def speed_limit_label(signs: list[Sign]) -> tuple[str | None, list[Sign]]:
    """The subset's label for one image (``None`` = drop it) and the speed-limit signs behind it."""
    if not signs:
        return "EMPTY", []
    limits = sorted((s for s in signs if s.name in SPEED_LIMITS), key=Sign.rank)
    if not limits or limits[0].visibility != "VISIBLE":
        return None, []
    label = SPEED_LIMITS[limits[0].name]
    return label, [s for s in limits if s.name == limits[0].name]


def _image_index(set_dir: Path) -> dict[str, Path]:
    """File name -> path for every JPEG below ``set_dir`` (for archives with an extra folder level)."""
    index: dict[str, Path] = {}
    for path in set_dir.rglob("*"):
        if path.suffix.lower() in (".jpg", ".jpeg", ".png") and path.is_file():
            index.setdefault(path.name, path)
    return index


def select(raw_dir: str | Path, set_name: str) -> list[tuple[Path, str, list[Sign], str]]:
    """The subset of one set: ``(image path, label, signs of that label, annotation file name)``."""
    set_dir = Path(raw_dir) / set_name
    annotations = set_dir / "annotations.txt"
    entries = parse_annotations(annotations)
    index: dict[str, Path] | None = None
    chosen = []
    dropped = 0
    for filename, signs, number in entries:
        label, label_signs = speed_limit_label(signs)
        if label is None:
            dropped += 1
            continue
        image = set_dir / filename
        if not image.is_file():
            index = _image_index(set_dir) if index is None else index
            if Path(filename).name not in index:
                raise InputFileError(image, f"image listed on line {number} of {annotations} not found")
            image = index[Path(filename).name]
        chosen.append((image, label, label_signs, filename))
    log.info("%s: %d of %d images kept (%d dropped)", set_name, len(chosen), len(entries), dropped)
    return chosen


def download(
    raw_dir: str | Path,
    *,
    base_url: str = BASE_URL,
    sets: Sequence[str] = ("Set1", "Set2"),
    retries: int = 3,
    verify_md5: bool = True,
) -> Path:
    """Fetch ``<set>/annotations.txt`` (md5 checked) and ``<set>/<set>Part0.zip`` (extracted) per set."""
    if not sets:
        raise ConfigError("download.sets", "names no set (e.g. Set1,Set2)")
    raw_dir = Path(raw_dir)
    base_url = base_url.rstrip("/")
    for set_name in sets:
        set_dir = raw_dir / set_name
        archive = raw_dir / f"{set_name}Part0.zip"
        download_file(f"{base_url}/{set_name}/{archive.name}", archive, retries=retries)
        extract_archive(archive, set_dir)
        md5 = ANNOTATIONS_MD5.get(set_name) if verify_md5 else None
        download_file(f"{base_url}/{set_name}/annotations.txt", set_dir / "annotations.txt", md5=md5, retries=retries)
    return raw_dir


def construct(
    raw_dir: str | Path,
    out_dir: str | Path,
    *,
    name: str = NAME,
    train_set: str = "Set1",
    test_set: str = "Set2",
    masks: bool = True,
    verify_images: bool = True,
) -> list[dict[str, Any]]:
    """Build the speed-limit dataset in ``out_dir`` (train from ``train_set``, test from ``test_set``).

    ``masks``: one mask per image with the boxes of the signs of its label (empty for EMPTY).
    """
    selections = {split: select(raw_dir, set_name) for split, set_name in (("train", train_set), ("test", test_set))}
    sets = {"train": train_set, "test": test_set}
    records = []
    seen: Counter[str] = Counter()
    with staged_folder(out_dir) as stage:
        for split, chosen in selections.items():
            for image, label, signs, filename in tqdm(chosen, desc=f"traffic signs {split}", unit="image"):
                image_id = common.safe_id(f"{sets[split]}_{Path(filename).with_suffix('').as_posix()}")
                seen[image_id] += 1
                if seen[image_id] > 1:  # the same file annotated twice: keep both, as the reference does
                    log.warning("%s listed more than once in %s/annotations.txt", filename, sets[split])
                    image_id = f"{image_id}.{seen[image_id]}"
                size = common.check_image(image) if verify_images else common.image_size(image)
                record = {
                    "image_id": image_id,
                    "path": common.place_file(image, stage, f"images/{image_id}{image.suffix.lower()}"),
                    "label": label,
                    "split": split,
                }
                if masks:
                    boxes = [s.box for s in signs]
                    record["mask"] = common.write_box_mask(stage, f"masks/{image_id}.png", size, boxes)
                records.append(record)
        common.save_constructed(stage, name, CLASSES, records, NAME)
    return records


SOURCE = Source(NAME, "image", construct, download)
