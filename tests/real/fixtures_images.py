"""Makers of small raw datasets in each real dataset's exact on-disk format (used by tests/real)."""

from __future__ import annotations

import bz2
import io
import json
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image


def rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A random HxWx3 uint8 image."""
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def save_image(path: Path, height: int, width: int, seed: int = 0, format: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb(height, width, seed)).save(path, format=format)
    return path


def jpeg_bytes(height: int, width: int, seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb(height, width, seed)).save(buffer, format="JPEG")
    return buffer.getvalue()


def corrupt(path: Path) -> Path:
    """Truncate an image file to a third of its size, keeping its header."""
    data = path.read_bytes()
    path.write_bytes(data[: max(len(data) // 3, 20)])
    return path


# -- CRCHistoPhenotypes -----------------------------------------------------------------------------

CRC_TYPES = ("epithelial", "fibroblast", "inflammatory", "others")


def make_crc(root: Path, epithelial_counts: Sequence[int], size: int = 40) -> Path:
    """``root/CRCHistoPhenotypes_2016_04_28/Classification/imgN/...`` with ``epithelial_counts[N-1]``
    epithelial detections in image N; the other types get a few detections each. Returns ``root``."""
    base = root / "CRCHistoPhenotypes_2016_04_28" / "Classification"
    rng = np.random.default_rng(1)
    for number, count in enumerate(epithelial_counts, start=1):
        folder = base / f"img{number}"
        save_image(folder / f"img{number}.bmp", size, size, seed=number, format="BMP")
        for kind in CRC_TYPES:
            n = count if kind == "epithelial" else int(rng.integers(0, 3))
            detection = rng.uniform(1, size, size=(n, 2)) if n else np.zeros((0, 0))
            scipy.io.savemat(folder / f"img{number}_{kind}.mat", {"detection": detection})
    return root


def zip_folder(folder: Path, archive: Path, prefix: Path | None = None) -> Path:
    """Zip every file below ``folder`` with names relative to ``prefix`` (default: ``folder``)."""
    prefix = prefix or folder
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(prefix).as_posix())
    return archive


# -- Swedish Traffic Signs --------------------------------------------------------------------------


def sign(visibility: str, lrx: float | str, lry: float | str, ulx: float, uly: float, type_: str, name: str) -> str:
    """One sign in annotations.txt syntax (lower-right corner first)."""
    return f"{visibility}, {lrx}, {lry}, {ulx}, {uly}, {type_}, {name}"


def make_sts_set(root: Path, set_name: str, lines: Iterable[tuple[str, str]], size: tuple[int, int] = (48, 64)) -> Path:
    """``root/<set_name>/annotations.txt`` with ``file:signs`` per line, plus a small JPEG per file."""
    folder = root / set_name
    folder.mkdir(parents=True, exist_ok=True)
    text = []
    for number, (filename, signs) in enumerate(lines):
        save_image(folder / filename, *size, seed=number, format="JPEG")
        text.append(f"{filename}:{signs}")
    (folder / "annotations.txt").write_text("\n".join(text) + "\n")
    return folder


# -- fMoW -------------------------------------------------------------------------------------------


def fmow_key(split: str, category: str, ident: int, view: int, suffix: str = "_rgb.jpg") -> str:
    return f"{split}/{category}/{category}_{ident}/{category}_{ident}_{view}{suffix}"


def fmow_metadata(category: str, boxes: list[list[int]], as_dict: bool = False) -> bytes:
    entries = [{"box": box, "category": category, "ID": i} for i, box in enumerate(boxes)]
    meta = {
        "img_width": 64,
        "img_height": 48,
        "gsd": 0.5,
        "bounding_boxes": entries[0] if as_dict else entries,
    }
    return json.dumps(meta).encode()


def fmow_files(images: Iterable[tuple[str, str, int, int]], size: tuple[int, int] = (48, 64)) -> dict[str, bytes]:
    """key -> bytes for each ``(split, category, id, view)``: the ``_rgb.jpg`` and ``_rgb.json``.

    Odd ids get their ``bounding_boxes`` as a single dict, even ids as a list of two boxes.
    """
    files = {}
    for number, (split, category, ident, view) in enumerate(images):
        files[fmow_key(split, category, ident, view)] = jpeg_bytes(*size, seed=number)
        boxes = [[5, 6, 10, 8]] if ident % 2 else [[5, 6, 10, 8], [30, 20, 4, 4]]
        files[fmow_key(split, category, ident, view, "_rgb.json")] = fmow_metadata(category, boxes, ident % 2 == 1)
    return files


def manifest_bytes(keys: Iterable[str]) -> bytes:
    return bz2.compress(json.dumps(sorted(keys)).encode())


def write_files(root: Path, files: dict[str, bytes]) -> Path:
    for key, data in files.items():
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root
