"""What ``zoomin predict`` reads: image files, whole slides, or folders of either.

:func:`resolve_inputs` expands folders (every file in it whose suffix is an image or slide format,
not recursively), decides for each file whether it is a plain image (decoded whole with Pillow) or
a whole slide (read through OpenSlide), and gives every input a unique id for its output files.
Every file is probed here, before any model runs: a missing, unreadable or unsupported file, or a
folder without images, is an :class:`~zoomin.errors.InputFileError` naming it.

:func:`open_input` opens one input as an :class:`~zoomin.image_access.ImageAccess`: an
:class:`~zoomin.image_access.InMemoryImage`, or a :class:`~zoomin.data.slide_access.SlideImage`
over the slide's HDF5 view cache, which it builds (or reuses, when one built from the same slide
at the needed scales is there) in the cache folder.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
from PIL import Image

from zoomin.data.slide_cache import build_slide_cache
from zoomin.data.slide_reader import open_slide
from zoomin.errors import InputFileError
from zoomin.image_access import ImageAccess, InMemoryImage, scale_key

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
SLIDE_SUFFIXES = (".svs", ".ndpi", ".vms", ".vmu", ".scn", ".mrxs", ".bif", ".svslide", ".dcm")
EITHER_SUFFIXES = (".tif", ".tiff")  # a tiled (pyramidal) TIFF is a slide, any other an image
KNOWN_SUFFIXES = IMAGE_SUFFIXES + SLIDE_SUFFIXES + EITHER_SUFFIXES
UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True)
class PredictInput:
    """One file to predict on: its path, the id its outputs are named by, ``image`` or ``slide``."""

    path: Path
    image_id: str
    kind: str


def resolve_inputs(paths: Sequence[str | Path]) -> list[PredictInput]:
    """The files named by ``paths`` (files or folders), probed and given unique ids, in order."""
    if not paths:
        raise InputFileError(".", "no input given: name image files, slides or folders")
    files: list[Path] = []
    for given in map(Path, paths):
        if given.is_dir():
            found = sorted(
                p for p in given.iterdir()
                if p.is_file() and p.suffix.lower() in KNOWN_SUFFIXES and not p.name.startswith(".")
            )
            if not found:
                raise InputFileError(
                    given, f"folder holds no image or slide (looked for {', '.join(KNOWN_SUFFIXES)})"
                )
            files.extend(found)
        elif given.is_file():
            files.append(given)
        else:
            raise InputFileError(given, "no such file or folder")
    unique: list[Path] = []
    for path in files:
        if path.resolve() not in {p.resolve() for p in unique}:
            unique.append(path)
    ids = _unique_ids(unique)
    return [PredictInput(path, image_id, probe(path)) for path, image_id in zip(unique, ids)]


def probe(path: Path) -> str:
    """``slide`` or ``image``: what ``path`` is, read from its header; InputFileError if neither."""
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        try:
            import openslide

            detected = openslide.OpenSlide.detect_format(str(path))
        except Exception:  # noqa: BLE001 - any failure here means "not a slide"
            detected = None
        if detected is not None:
            open_slide(path).close()  # a truncated slide fails here, naming the file
            return "slide"
        if suffix in SLIDE_SUFFIXES:
            raise InputFileError(path, "not a slide format OpenSlide can read (corrupt or truncated?)")
    try:
        with Image.open(path) as image:
            image.size  # noqa: B018 - reading the header is the check
    except (OSError, Image.DecompressionBombError) as error:
        raise InputFileError(path, f"not an image or slide zoomin can read ({error})") from None
    return "image"


def _unique_ids(paths: list[Path]) -> list[str]:
    """File stems (unsafe characters replaced); files sharing a stem keep their suffix, then a number."""
    stems = [UNSAFE.sub("_", p.stem) or "image" for p in paths]
    counts = Counter(stems)
    ids: list[str] = []
    for stem, path in zip(stems, paths):
        name = stem if counts[stem] == 1 else UNSAFE.sub("_", path.name)
        candidate, number = name, 1
        while candidate in ids:
            number += 1
            candidate = f"{name}_{number}"
        ids.append(candidate)
    return ids


@contextlib.contextmanager
def open_input(
    item: PredictInput, scales: Sequence[float], tile_size: int, cache_dir: Path
) -> Iterator[ImageAccess]:
    """``item`` as an ImageAccess; a slide's view cache (``scales``, tissue tiles of ``tile_size``)
    is ``cache_dir/<image_id>.h5``, built unless a matching one is there."""
    if item.kind == "image":
        from zoomin.data.view_cache import load_rgb

        yield InMemoryImage(load_rgb(item.path))
        return
    from zoomin.data.slide_access import SlideImage

    cache = Path(cache_dir) / f"{item.image_id}.h5"
    if not _cache_matches(cache, item.path, scales):
        log.info("%s: building its view cache %s", item.path, cache)
        build_slide_cache(item.path, cache, sorted({float(s) for s in scales}), tile_size)
    image = SlideImage(item.path, cache)
    try:
        yield image
    finally:
        image.close()


def _cache_matches(cache: Path, slide: Path, scales: Sequence[float]) -> bool:
    """Whether ``cache`` was built from ``slide`` and holds a view at every one of ``scales``."""
    if not cache.is_file():
        return False
    try:
        with h5py.File(cache, "r") as h5:
            source = Path(str(h5.attrs["source"]))
            cached = {scale_key(s) for s in json.loads(h5.attrs["scales"])}
    except (OSError, KeyError, ValueError):
        return False
    return source == slide.resolve() and {scale_key(s) for s in scales} <= cached
