"""Colon cancer (CRCHistoPhenotypes): 100 H&E images of 500x500, positive iff any epithelial nucleus.

Raw layout (the zip ``crchistophenotypes_2016_04_28.zip`` extracted)::

    CRCHistoPhenotypes_2016_04_28/Classification/imgN/imgN.bmp
    CRCHistoPhenotypes_2016_04_28/Classification/imgN/imgN_{epithelial,fibroblast,inflammatory,others}.mat

Each ``.mat`` holds a ``detection`` array of nucleus centres, shape (n, 2) as ``(x, y)`` in pixels,
possibly empty. The label is ``positive`` iff ``imgN_epithelial.mat`` has at least one detection
(51 positive / 49 negative on the real data). All images get split ``all``: the 10-fold x 5
repetition cross-validation is made by :mod:`zoomin.data.folds`. Masks (optional) are discs around
the epithelial nuclei. The host needs a login, so the download may end in :class:`LoginRequired`
telling the user where to put the zip.
"""

from __future__ import annotations

import logging
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io
from scipy.io.matlab import MatReadError
from tqdm import tqdm

from zoomin.data.constructed import staged_folder
from zoomin.data.download import DownloadError, LoginRequired, download_file, extract_archive
from zoomin.data.sources import Source, common
from zoomin.errors import InputFileError

log = logging.getLogger(__name__)

NAME = "colon_cancer"
URL = (
    "https://warwick.ac.uk/fac/sci/dcs/research/tia/data/crchistolabelednucleihe/"
    "crchistophenotypes_2016_04_28.zip"
)
ARCHIVE_NAME = "crchistophenotypes_2016_04_28.zip"
TOP_FOLDER = "CRCHistoPhenotypes_2016_04_28"
CLASSES = ["negative", "positive"]
IMAGE_DIR = re.compile(r"^img(\d+)$")


def find_classification_dir(raw_dir: str | Path) -> Path:
    """The ``Classification`` folder under ``raw_dir`` (or ``raw_dir`` itself if it is that folder)."""
    raw_dir = Path(raw_dir)
    for candidate in (
        raw_dir / TOP_FOLDER / "Classification",
        raw_dir / "Classification",
        raw_dir,
    ):
        if candidate.is_dir() and any(IMAGE_DIR.match(p.name) for p in candidate.iterdir() if p.is_dir()):
            return candidate
    if raw_dir.is_dir():
        for candidate in sorted(raw_dir.rglob("Classification")):
            if candidate.is_dir():
                return candidate
    raise InputFileError(
        raw_dir,
        f"no CRCHistoPhenotypes 'Classification' folder found (expected {TOP_FOLDER}/Classification/imgN/); "
        f"put {ARCHIVE_NAME} in this folder and run `zoomin download-dataset --dataset colon_cancer` again",
    )


def download(raw_dir: str | Path, *, url: str = URL, md5: str | None = None, retries: int = 3) -> Path:
    """Fetch and unpack the CRCHistoPhenotypes zip into ``raw_dir``; return the Classification folder.

    A zip the user placed at ``raw_dir/crchistophenotypes_2016_04_28.zip`` by hand is used as is.
    If the host wants a login, raises :class:`LoginRequired` naming that exact path.
    """
    raw_dir = Path(raw_dir)
    raw_dir.mkdir(parents=True, exist_ok=True)
    try:
        return find_classification_dir(raw_dir)
    except InputFileError:
        pass
    archive = raw_dir / ARCHIVE_NAME
    if not archive.exists():
        try:
            download_file(url, archive, md5=md5, retries=retries)
        except LoginRequired:
            raise
        except DownloadError as error:
            raise LoginRequired(url, archive, reason=str(error)) from None
    if not zipfile.is_zipfile(archive):
        archive.unlink()
        raise LoginRequired(url, archive, reason="the server did not send a zip archive")
    extract_archive(archive, raw_dir)
    return find_classification_dir(raw_dir)


def load_detections(mat_path: str | Path) -> np.ndarray:
    """The (n, 2) ``detection`` array of a CRCHistoPhenotypes ``.mat`` file (n may be 0)."""
    mat_path = Path(mat_path)
    if not mat_path.is_file():
        raise InputFileError(mat_path, "annotation file not found")
    try:
        content = scipy.io.loadmat(mat_path)
    except (MatReadError, ValueError, OSError, TypeError, IndexError, KeyError, NotImplementedError) as error:
        raise InputFileError(mat_path, f"cannot be read as a MATLAB file ({error})") from None
    if "detection" not in content:
        keys = sorted(k for k in content if not k.startswith("__"))
        raise InputFileError(mat_path, f"has no 'detection' array (variables: {keys})")
    detection = np.asarray(content["detection"])
    if detection.size == 0:
        return np.zeros((0, 2), dtype=float)
    if detection.ndim != 2 or detection.shape[1] != 2:
        raise InputFileError(mat_path, f"'detection' has shape {detection.shape}, expected (n, 2)")
    return detection.astype(float)


def construct(
    raw_dir: str | Path,
    out_dir: str | Path,
    *,
    name: str = NAME,
    masks: bool = True,
    mask_radius: float = 6.0,
    verify_images: bool = True,
) -> list[dict[str, Any]]:
    """Build the constructed colon-cancer dataset in ``out_dir``; return its records.

    ``masks``: write a mask per image with a disc of ``mask_radius`` px around each epithelial
    nucleus (MATLAB coordinates are 1-based, converted to 0-based). ``verify_images``: decode
    every BMP so a corrupt file is reported here rather than during training.
    """
    root = find_classification_dir(raw_dir)
    folders = sorted(
        (p for p in root.iterdir() if p.is_dir() and IMAGE_DIR.match(p.name)),
        key=lambda p: int(IMAGE_DIR.match(p.name).group(1)),
    )
    if not folders:
        raise InputFileError(root, "contains no imgN folders")
    records = []
    with staged_folder(out_dir) as stage:
        for folder in tqdm(folders, desc="colon cancer", unit="image"):
            image_id = folder.name
            bmp = folder / f"{image_id}.bmp"
            detections = load_detections(folder / f"{image_id}_epithelial.mat")
            size = common.check_image(bmp) if verify_images else common.image_size(bmp)
            record = {
                "image_id": image_id,
                "path": common.place_file(bmp, stage, f"images/{image_id}.bmp"),
                "label": "positive" if len(detections) else "negative",
                "split": "all",
            }
            if masks:
                record["mask"] = common.write_point_mask(
                    stage, f"masks/{image_id}.png", size, detections - 1.0, mask_radius
                )
            records.append(record)
        positives = sum(r["label"] == "positive" for r in records)
        if len(records) == 100 and positives != 51:
            log.warning("expected 51 positive / 49 negative images, found %d / %d", positives, 100 - positives)
        common.save_constructed(stage, name, CLASSES, records, NAME)
    return records


SOURCE = Source(NAME, "image", construct, download)
