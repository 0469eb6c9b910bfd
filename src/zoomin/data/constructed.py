"""The constructed-dataset format (docs/formats.md section 1): write it, read it, validate it.

A constructed folder holds ``dataset.json``, ``labels.csv``, ``images/`` and optionally ``masks/``.
Every construction step (synthetic stand-ins, real-dataset builders) ends with
:func:`write_constructed`; every later step starts with :func:`read_constructed`. Both validate the
same rules, and every problem is raised as :class:`zoomin.errors.InputFileError` naming the file.

Writing is atomic: ``dataset.json`` is removed first and written last (each file through a temp file
and a rename), so a folder that has ``dataset.json`` is complete. :func:`staged_folder` goes one step
further for generators: the whole folder is built under a temporary name and renamed into place.
"""

from __future__ import annotations

import contextlib
import csv
import json
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from zoomin.atomic import atomic_path
from zoomin.errors import InputFileError

FORMAT_VERSION = 1
KINDS = ("image", "slide")
SPLITS = ("train", "val", "test", "all")
REQUIRED_COLUMNS = ("image_id", "path", "label", "split")
OPTIONAL_COLUMNS = ("mask",)
IMAGE_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.-]+$")
DATASET_JSON = "dataset.json"
LABELS_CSV = "labels.csv"


@dataclass(frozen=True)
class ImageRecord:
    """One row of ``labels.csv``; ``path`` and ``mask`` are relative to the constructed folder."""

    image_id: str
    path: str
    label: str
    split: str
    mask: str | None = None


@dataclass(frozen=True)
class ConstructedDataset:
    """A validated constructed folder: its metadata and its records, in ``labels.csv`` order."""

    root: Path
    name: str
    kind: str
    classes: tuple[str, ...]
    source: str
    mpp: float | None
    seed: int | None
    records: tuple[ImageRecord, ...]
    _by_id: dict[str, ImageRecord] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_id.update({record.image_id: record for record in self.records})

    def __len__(self) -> int:
        return len(self.records)

    @property
    def image_ids(self) -> list[str]:
        return [record.image_id for record in self.records]

    @property
    def has_masks(self) -> bool:
        return any(record.mask for record in self.records)

    def record(self, image_id: str) -> ImageRecord:
        """The record of ``image_id`` (KeyError if unknown)."""
        return self._by_id[image_id]

    def label_index(self, record: ImageRecord) -> int:
        """Index of the record's label in :attr:`classes`."""
        return self.classes.index(record.label)

    def image_path(self, record: ImageRecord) -> Path:
        return self.root / record.path

    def mask_path(self, record: ImageRecord) -> Path | None:
        return self.root / record.mask if record.mask else None


def write_constructed(
    out_dir: str | Path,
    name: str,
    kind: str,
    classes: Iterable[str],
    records: Iterable[ImageRecord | Mapping[str, str | None]],
    source: str,
    mpp: float | None = None,
    seed: int | None = None,
) -> ConstructedDataset:
    """Validate ``records`` against the files already under ``out_dir``, then write the metadata.

    Images (and masks) must already be in ``out_dir`` at their relative paths. Nothing is written
    when validation fails. ``labels.csv`` is written first and ``dataset.json`` last, each atomically.
    """
    root = Path(out_dir)
    rows = [_as_record(record, root / LABELS_CSV) for record in records]
    meta = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "kind": kind,
        "classes": list(classes),
        "source": source,
        "mpp": mpp,
        "seed": seed,
    }
    dataset = _validate(root, meta, rows, root / DATASET_JSON, root / LABELS_CSV)
    (root / DATASET_JSON).unlink(missing_ok=True)  # the folder is incomplete until rewritten
    with_mask = any(row.mask for row in rows)
    columns = list(REQUIRED_COLUMNS) + (["mask"] if with_mask else [])
    with atomic_path(root / LABELS_CSV) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(columns)
            for row in rows:
                values = [row.image_id, row.path, row.label, row.split]
                writer.writerow(values + ([row.mask or ""] if with_mask else []))
    with atomic_path(root / DATASET_JSON) as tmp:
        tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return dataset


def read_constructed(directory: str | Path) -> ConstructedDataset:
    """Read and validate a constructed folder (see docs/formats.md section 1)."""
    root = Path(directory)
    meta_path, labels_path = root / DATASET_JSON, root / LABELS_CSV
    if not meta_path.is_file():
        raise InputFileError(
            meta_path, "missing: not a constructed dataset folder, or its construction did not finish"
        )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputFileError(meta_path, f"not valid JSON ({error})") from error
    if not labels_path.is_file():
        raise InputFileError(labels_path, "missing")
    rows = _read_labels(labels_path)
    return _validate(root, meta, rows, meta_path, labels_path)


@contextlib.contextmanager
def staged_folder(out_dir: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder next to ``out_dir``; move it onto ``out_dir`` on success.

    An existing ``out_dir`` is replaced only if it is empty or a constructed folder (has
    ``dataset.json``); anything else is refused rather than deleted. On failure the temporary
    folder is removed and ``out_dir`` is left as it was.
    """
    target = Path(out_dir)
    if target.exists() and not _replaceable(target):
        raise InputFileError(
            target, "exists and is not a constructed dataset folder; refusing to overwrite it"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield staging
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _replaceable(target: Path) -> bool:
    if not target.is_dir():
        return False
    return (target / DATASET_JSON).is_file() or not any(target.iterdir())


def _as_record(record: ImageRecord | Mapping[str, str | None], labels_path: Path) -> ImageRecord:
    if isinstance(record, ImageRecord):
        return record
    try:
        return ImageRecord(
            image_id=str(record["image_id"]),
            path=str(record["path"]),
            label=str(record["label"]),
            split=str(record["split"]),
            mask=(str(record["mask"]) if record.get("mask") else None),
        )
    except KeyError as error:
        raise InputFileError(labels_path, f"record without field {error}") from error


def _read_labels(labels_path: Path) -> list[ImageRecord]:
    try:
        with open(labels_path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            columns = reader.fieldnames or []
            missing = [column for column in REQUIRED_COLUMNS if column not in columns]
            if missing:
                raise InputFileError(
                    labels_path,
                    f"missing column(s) {', '.join(missing)}; expected "
                    f"{','.join(REQUIRED_COLUMNS)}[,mask], found {','.join(columns) or 'nothing'}",
                )
            rows = []
            for row in reader:
                if None in row or any(row[column] is None for column in REQUIRED_COLUMNS):
                    raise InputFileError(
                        labels_path, f"line {reader.line_num}: wrong number of fields"
                    )
                rows.append(
                    ImageRecord(
                        image_id=row["image_id"].strip(),
                        path=row["path"].strip(),
                        label=row["label"].strip(),
                        split=row["split"].strip(),
                        mask=(row.get("mask") or "").strip() or None,
                    )
                )
    except (UnicodeDecodeError, csv.Error) as error:
        raise InputFileError(labels_path, f"not a readable CSV file ({error})") from error
    return rows


def _validate_meta(meta: object, meta_path: Path) -> None:
    if not isinstance(meta, dict):
        raise InputFileError(meta_path, "must hold a JSON object")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise InputFileError(
            meta_path,
            f"format_version {version!r} is not supported (this zoomin reads {FORMAT_VERSION}); "
            "delete the folder and construct it again",
        )
    for key in ("name", "source"):
        if not isinstance(meta.get(key), str) or not meta[key]:
            raise InputFileError(meta_path, f"'{key}' must be a non-empty string")
    if meta.get("kind") not in KINDS:
        raise InputFileError(meta_path, f"'kind' must be one of {list(KINDS)}, got {meta.get('kind')!r}")
    classes = meta.get("classes")
    if (
        not isinstance(classes, list)
        or not all(isinstance(name, str) and name for name in classes)
        or len(set(classes)) != len(classes)
    ):
        raise InputFileError(meta_path, "'classes' must be a list of distinct non-empty strings")
    if len(classes) < 2:
        raise InputFileError(meta_path, f"'classes' must name at least two classes, got {classes}")
    mpp = meta.get("mpp")
    if mpp is not None and (isinstance(mpp, bool) or not isinstance(mpp, (int, float)) or mpp <= 0):
        raise InputFileError(meta_path, f"'mpp' must be a positive number or null, got {mpp!r}")
    seed = meta.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise InputFileError(meta_path, f"'seed' must be an integer or null, got {seed!r}")


def _check_relative_file(root: Path, relative: str, what: str, line: int, labels_path: Path) -> None:
    if not relative:
        raise InputFileError(labels_path, f"line {line}: empty {what} path")
    path = Path(relative)
    if path.is_absolute() or ".." in path.parts:
        raise InputFileError(
            labels_path, f"line {line}: {what} path '{relative}' must be relative and inside the folder"
        )
    if not (root / path).is_file():
        raise InputFileError(root / path, f"{what} file listed in {labels_path} (line {line}) is missing")


def _validate(
    root: Path, meta: object, rows: list[ImageRecord], meta_path: Path, labels_path: Path
) -> ConstructedDataset:
    _validate_meta(meta, meta_path)
    assert isinstance(meta, dict)
    classes = tuple(meta["classes"])
    if not rows:
        raise InputFileError(labels_path, "the dataset is empty (no images listed)")
    seen: dict[str, int] = {}
    for line, row in enumerate(rows, start=2):
        if not IMAGE_ID_PATTERN.match(row.image_id):
            raise InputFileError(
                labels_path,
                f"line {line}: invalid image_id {row.image_id!r} (allowed: letters, digits, _ . -)",
            )
        if row.image_id in seen:
            raise InputFileError(
                labels_path,
                f"line {line}: duplicate image_id {row.image_id!r} (first on line {seen[row.image_id]})",
            )
        seen[row.image_id] = line
        if row.label not in classes:
            raise InputFileError(
                labels_path,
                f"line {line}: unknown class {row.label!r} for {row.image_id} "
                f"(classes in {meta_path.name}: {list(classes)})",
            )
        if row.split not in SPLITS:
            raise InputFileError(
                labels_path, f"line {line}: unknown split {row.split!r} (allowed: {list(SPLITS)})"
            )
        _check_relative_file(root, row.path, "image", line, labels_path)
        if row.mask:
            _check_relative_file(root, row.mask, "mask", line, labels_path)
    splits = {row.split for row in rows}
    if "all" in splits and len(splits) > 1:
        raise InputFileError(
            labels_path, f"split 'all' (cross-validation) cannot be mixed with {sorted(splits - {'all'})}"
        )
    present = {row.label for row in rows}
    if len(present) < 2:
        raise InputFileError(
            labels_path, f"single-class dataset: every image is labelled {present.pop()!r}"
        )
    return ConstructedDataset(
        root=root,
        name=meta["name"],
        kind=meta["kind"],
        classes=classes,
        source=meta["source"],
        mpp=None if meta.get("mpp") is None else float(meta["mpp"]),
        seed=meta.get("seed"),
        records=tuple(rows),
    )
