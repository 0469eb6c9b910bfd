"""The HDF5 view cache (docs/formats.md section 2): build it from a constructed folder, read it back.

:func:`build_view_cache` downscales every image of a constructed ``kind: image`` dataset to each
requested scale (Pillow box filter, exactly as :class:`zoomin.image_access.InMemoryImage` does) and
writes ``views.h5`` through a temporary file that is renamed only when complete.

:class:`ViewCache` reads it: the index (ids, labels, splits, sizes), and for each image a
:class:`CachedImage` -- an :class:`~zoomin.image_access.ImageAccess` whose views come from the cache
and whose full-resolution regions and patches come from the image file, decoded with Pillow (gray,
palette and RGBA converted to RGB) only when first needed. The HDF5 file is opened lazily and
reopened in a forked worker process, so a ``ViewCache`` may be handed to DataLoader workers.

Whole-slide datasets (``kind: slide``) keep their views in one HDF5 cache per slide
(:mod:`zoomin.data.slide_cache`); :func:`build_slide_view_index` writes a ``views.h5`` with the same
index whose ``/views/<image_id>`` (and ``/masks/<image_id>``) are external links into those
caches, and :meth:`ViewCache.image` then returns a :class:`zoomin.data.slide_access.SlideImage`
(views from the slide cache, regions and patches read lazily through OpenSlide).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from zoomin.atomic import atomic_path
from zoomin.data.constructed import DATASET_JSON, ConstructedDataset, ImageRecord, read_constructed
from zoomin.errors import ConfigError, InputFileError
from zoomin.image_access import InMemoryImage, as_hwc_uint8, resize_uint8, scale_key, scaled_length, to_chw_float

if TYPE_CHECKING:
    from zoomin.data.slide_access import SlideImage

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
SPACE_RESERVE = 8 << 20  # bytes kept free on the disk while writing a cache (see _check_free_space)
_STRING = h5py.string_dtype(encoding="utf-8")


def load_rgb(path: str | Path) -> np.ndarray:
    """Decode an image file to HxWx3 uint8 (gray, palette, RGBA and 16-bit converted to RGB)."""
    try:
        with Image.open(path) as image:
            if image.mode == "RGB":
                return np.asarray(image).copy()
            if image.mode in ("I;16", "I;16B", "I;16L", "I"):
                array = np.asarray(image, dtype=np.float64)
                peak = max(float(array.max()), 1.0)
                return as_hwc_uint8((array * (255.0 / (65535.0 if peak > 255 else 255.0))).round())
            return np.asarray(image.convert("RGB")).copy()
    except FileNotFoundError as error:
        raise InputFileError(path, "image file is missing") from error
    except (OSError, Image.DecompressionBombError) as error:
        raise InputFileError(path, f"cannot decode the image ({error})") from error


def load_mask(path: str | Path, size: tuple[int, int]) -> np.ndarray:
    """Decode a mask to a HxW bool array (non-zero = object); it must have the image's ``size``."""
    try:
        with Image.open(path) as image:
            mask = np.asarray(image)
    except FileNotFoundError as error:
        raise InputFileError(path, "mask file is missing") from error
    except OSError as error:
        raise InputFileError(path, f"cannot decode the mask ({error})") from error
    if mask.ndim == 3:
        mask = mask.max(axis=2)
    if mask.shape != size:
        raise InputFileError(path, f"mask is {mask.shape[1]}x{mask.shape[0]} but its image is {size[1]}x{size[0]}")
    return mask != 0


def _check_scales(scales: list[float]) -> list[float]:
    if not scales:
        raise ConfigError("scales", "at least one scale is needed")
    checked = []
    for scale in scales:
        if not 0.0 < float(scale) <= 1.0:
            raise ConfigError("scales", f"scales must be in (0, 1], got {scale}")
        if scale_key(scale) not in {scale_key(s) for s in checked}:
            checked.append(float(scale))
    return checked


def build_view_cache(
    constructed_dir: str | Path, scales: list[float], out_path: str | Path, progress: bool = True
) -> Path:
    """Write the view cache of a constructed ``kind: image`` dataset to ``out_path`` (atomically)."""
    dataset = read_constructed(constructed_dir)
    scales = _check_scales(list(scales))
    if dataset.kind != "image":
        raise InputFileError(
            dataset.root / "dataset.json",
            f"kind {dataset.kind!r}: views of slides come from the per-slide caches "
            "(zoomin.data.slide_cache); index them with build_slide_view_index "
            "(`zoomin build-views --slides DIR`)",
        )
    out_path = Path(out_path)
    log.info("building %s: %d images at scales %s", out_path, len(dataset), scales)
    with atomic_path(out_path) as tmp:
        with h5py.File(tmp, "w") as h5:
            _write_attrs(h5, dataset, scales, out_path)
            heights, widths = _write_views(h5, dataset, scales, progress)
            _write_index(h5, dataset, heights, widths)
    return out_path


def _write_attrs(h5: h5py.File, dataset: ConstructedDataset, scales: list[float], out_path: Path) -> None:
    h5.attrs["format_version"] = FORMAT_VERSION
    h5.attrs["dataset"] = dataset.name
    h5.attrs["kind"] = dataset.kind
    h5.attrs["classes"] = json.dumps(list(dataset.classes))
    h5.attrs["scales"] = json.dumps(scales)
    h5.attrs["constructed"] = _relative_to(dataset.root, out_path.parent).as_posix()


def _relative_to(target: Path, folder: Path) -> Path:
    """``target`` relative to ``folder`` (so the two may move together), absolute across drives."""
    try:
        return Path(os.path.relpath(target.resolve(), folder.resolve()))
    except ValueError:  # another drive (Windows)
        return target.resolve()


def _write_views(
    h5: h5py.File, dataset: ConstructedDataset, scales: list[float], progress: bool
) -> tuple[list[int], list[int]]:
    heights, widths = [], []
    views, masks = h5.create_group("views"), None
    for record in tqdm(dataset.records, desc=f"views {dataset.name}", unit="img", disable=not progress):
        pixels = load_rgb(dataset.image_path(record))
        height, width = pixels.shape[:2]
        heights.append(height)
        widths.append(width)
        image_views = {
            scale_key(s): resize_uint8(pixels, scaled_length(height, s), scaled_length(width, s)) for s in scales
        }
        _check_free_space(h5, sum(view.nbytes for view in image_views.values()))
        group = views.create_group(record.image_id)
        for key, view in image_views.items():
            _store(group, key, view)
        mask_path = dataset.mask_path(record)
        if mask_path is not None:
            masks = masks if masks is not None else h5.create_group("masks")
            mask = load_mask(mask_path, (height, width)).astype(np.uint8) * 255
            group = masks.create_group(record.image_id)
            for scale in scales:
                side = (scaled_length(height, scale), scaled_length(width, scale))
                _store(group, scale_key(scale), resize_uint8(mask, *side))
    return heights, widths


def _check_free_space(h5: h5py.File, needed: int) -> None:
    """Stop with ENOSPC before the disk is full: HDF5 does not report a full disk cleanly (failed
    writes of buffered chunks are swallowed, and closing the file afterwards may crash the process),
    so the build checks for room before each image (its raw views plus a reserve)."""
    free = shutil.disk_usage(Path(h5.filename).parent).free
    if free < needed + SPACE_RESERVE:
        raise OSError(
            errno.ENOSPC,
            f"no space left on the device ({free} bytes free; the next image needs about {needed} "
            f"bytes plus a reserve of {SPACE_RESERVE})",
        )


def _store(group: h5py.Group, name: str, array: np.ndarray) -> None:
    chunks = (min(array.shape[0], 256), min(array.shape[1], 256)) + array.shape[2:]
    group.create_dataset(name, data=array, chunks=chunks, compression="gzip", compression_opts=4)


def _write_index(h5: h5py.File, dataset: ConstructedDataset, heights: list[int], widths: list[int]) -> None:
    index = h5.create_group("index")
    records = dataset.records
    index.create_dataset("image_id", data=[r.image_id for r in records], dtype=_STRING)
    index.create_dataset("label", data=np.array([dataset.label_index(r) for r in records], dtype=np.int64))
    index.create_dataset("split", data=[r.split for r in records], dtype=_STRING)
    index.create_dataset("path", data=[r.path for r in records], dtype=_STRING)
    index.create_dataset("height", data=np.array(heights, dtype=np.int64))
    index.create_dataset("width", data=np.array(widths, dtype=np.int64))


def build_slide_view_index(
    constructed_dir: str | Path, slides_dir: str | Path, scales: list[float], out_path: str | Path
) -> Path:
    """Write ``views.h5`` of a constructed ``kind: slide`` dataset (atomically) over its slide caches.

    ``slides_dir`` holds one ``<image_id>.h5`` per slide (:func:`zoomin.data.slide_cache.build_slide_cache`)
    with every scale in ``scales``. ``/views/<image_id>`` becomes an HDF5 external link to the root of
    that cache and ``/masks/<image_id>`` one to its ``mask`` group (when the slide has a mask); the
    links are relative to ``views.h5``, so ``results/<dataset>/`` may be moved as a whole.
    """
    dataset = read_constructed(constructed_dir)
    scales = _check_scales(list(scales))
    if dataset.kind != "slide":
        raise InputFileError(
            dataset.root / "dataset.json", f"kind {dataset.kind!r}: use build_view_cache for image datasets"
        )
    out_path, slides_dir = Path(out_path), Path(slides_dir)
    link_dir = _relative_to(slides_dir, out_path.parent)
    heights, widths, has_mask = [], [], []
    for record in dataset.records:
        cache_path = slides_dir / f"{record.image_id}.h5"
        if not cache_path.is_file():
            raise InputFileError(
                cache_path, f"slide cache of {record.image_id} is missing; build it with `zoomin slide-cache`"
            )
        try:
            with h5py.File(cache_path, "r") as cache:
                heights.append(int(cache.attrs["height"]))
                widths.append(int(cache.attrs["width"]))
                missing = [scale_key(s) for s in scales if scale_key(s) not in cache]
                has_mask.append("mask" in cache and all(scale_key(s) in cache["mask"] for s in scales))
        except (OSError, KeyError) as error:
            raise InputFileError(
                cache_path, f"unreadable or incomplete slide cache ({error}); delete it and rebuild"
            ) from error
        if missing:
            raise InputFileError(
                cache_path, f"has no view at scale(s) {', '.join(missing)}; rebuild it with those scales"
            )
        if record.mask and not has_mask[-1]:
            log.warning("%s: the slide has a mask but its cache %s has no mask views", record.image_id, cache_path)
    log.info("indexing %d slide caches of %s into %s", len(dataset), dataset.name, out_path)
    with atomic_path(out_path) as tmp:
        with h5py.File(tmp, "w") as h5:
            _write_attrs(h5, dataset, scales, out_path)
            h5.attrs["slides"] = link_dir.as_posix()
            views = h5.create_group("views")
            masks = h5.create_group("masks") if any(has_mask) else None
            for record, mask in zip(dataset.records, has_mask):
                target = (link_dir / f"{record.image_id}.h5").as_posix()
                views[record.image_id] = h5py.ExternalLink(target, "/")
                if mask and masks is not None:
                    masks[record.image_id] = h5py.ExternalLink(target, "/mask")
            _write_index(h5, dataset, heights, widths)
    return out_path


@dataclass(frozen=True)
class CacheIndex:
    """The ``/index`` group: one entry per image, in ``labels.csv`` order."""

    image_ids: tuple[str, ...]
    labels: np.ndarray  # int64, index into classes
    splits: tuple[str, ...]
    paths: tuple[str, ...]
    heights: np.ndarray
    widths: np.ndarray


class ViewCache:
    """Read access to a ``views.h5`` file.

    ``constructed_dir`` overrides the folder recorded in the file (where the full-resolution images
    are read from), e.g. when results were moved to another machine. Decoded full-resolution images
    are kept in memory up to ``decoded_budget_bytes`` in all, so an epoch decodes each file once.
    """

    def __init__(
        self,
        path: str | Path,
        constructed_dir: str | Path | None = None,
        decoded_budget_bytes: int = 2 * 1024**3,
    ):
        self.path = Path(path)
        self.decoded_budget_bytes = int(decoded_budget_bytes)
        self._decoded: dict[str, InMemoryImage] = {}
        self._decoded_bytes = 0
        self._h5: h5py.File | None = None
        self._pid: int | None = None
        h5 = self._file()
        attrs = h5.attrs
        try:
            self.dataset: str = str(attrs["dataset"])
            self.kind: str = str(attrs["kind"])
            self.classes: tuple[str, ...] = tuple(json.loads(attrs["classes"]))
            self.scales: tuple[float, ...] = tuple(float(s) for s in json.loads(attrs["scales"]))
            recorded = Path(str(attrs["constructed"]))
            index = h5["index"]
            self.index = CacheIndex(
                image_ids=tuple(index["image_id"].asstr()[()]),
                labels=index["label"][()].astype(np.int64),
                splits=tuple(index["split"].asstr()[()]),
                paths=tuple(index["path"].asstr()[()]),
                heights=index["height"][()].astype(np.int64),
                widths=index["width"][()].astype(np.int64),
            )
        except (KeyError, ValueError, TypeError) as error:
            raise InputFileError(
                self.path, f"incomplete or corrupt view cache ({error}); delete it and rebuild"
            ) from error
        if constructed_dir is not None:
            self.constructed = Path(constructed_dir)
        else:  # recorded relative to views.h5 (absolute in caches written before that)
            self.constructed = recorded if recorded.is_absolute() else (self.path.parent / recorded).resolve()
        self._position = {image_id: i for i, image_id in enumerate(self.index.image_ids)}

    def as_dataset(self) -> ConstructedDataset:
        """The dataset as the cache's own index records it (ids, labels, splits, paths), without
        reading the constructed folder's labels.csv."""
        records = tuple(
            ImageRecord(image_id, path, self.classes[int(label)], split)
            for image_id, path, label, split in zip(
                self.index.image_ids, self.index.paths, self.index.labels, self.index.splits
            )
        )
        return ConstructedDataset(
            root=self.constructed, name=self.dataset, kind=self.kind, classes=self.classes,
            source="", mpp=None, seed=None, records=records,
        )

    def _file(self) -> h5py.File:
        if self._h5 is None or self._pid != os.getpid():
            self._h5 = self._open()
            self._pid = os.getpid()
        return self._h5

    def _open(self) -> h5py.File:
        if not self.path.is_file():
            raise InputFileError(self.path, "view cache is missing; build it with `zoomin build-views`")
        try:
            h5 = h5py.File(self.path, "r")
        except OSError as error:
            raise InputFileError(self.path, f"not a readable HDF5 file ({error}); delete it and rebuild") from error
        version = h5.attrs.get("format_version")
        if version is None or int(version) != FORMAT_VERSION:
            h5.close()
            raise InputFileError(
                self.path,
                f"view cache format_version {None if version is None else int(version)} but this zoomin "
                f"reads version {FORMAT_VERSION}; delete the file and rebuild it with `zoomin build-views`",
            )
        return h5

    def close(self) -> None:
        if self._h5 is not None and self._pid == os.getpid():
            self._h5.close()
        self._h5 = None

    def __enter__(self) -> ViewCache:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_h5"], state["_pid"] = None, None  # h5py handles do not pickle: reopen on use
        state["_decoded"], state["_decoded_bytes"] = {}, 0
        return state

    def __len__(self) -> int:
        return len(self.index.image_ids)

    @property
    def mpp(self) -> float | None:
        """Level-0 microns per pixel of the dataset (its constructed ``dataset.json``), if known."""
        try:
            value = json.loads((self.constructed / DATASET_JSON).read_text(encoding="utf-8")).get("mpp")
            return None if value is None else float(value)
        except (OSError, ValueError, TypeError, AttributeError):
            return None

    @property
    def has_masks(self) -> bool:
        return "masks" in self._file()

    def position(self, image_id: str) -> int:
        try:
            return self._position[image_id]
        except KeyError:
            raise KeyError(f"{image_id!r} is not in {self.path}") from None

    def label(self, image_id: str) -> int:
        return int(self.index.labels[self.position(image_id)])

    def view_array(self, image_id: str, scale: float) -> np.ndarray:
        """The cached uint8 HxWx3 view (KeyError if that scale was not cached)."""
        self.position(image_id)
        return self._file()[f"views/{image_id}/{scale_key(scale)}"][()]

    def view_rows(self, image_id: str, scale: float, top: int, stop: int) -> np.ndarray:
        """Rows ``[top, stop)`` of the cached view (only those chunks are read)."""
        self.position(image_id)
        return self._file()[f"views/{image_id}/{scale_key(scale)}"][top:stop]

    def mask_view(self, image_id: str, scale: float) -> np.ndarray | None:
        """uint8 HxW mask view (fraction of object pixels x 255), or None if the image has no mask."""
        self.position(image_id)
        name = f"masks/{image_id}/{scale_key(scale)}"
        h5 = self._file()
        return h5[name][()] if name in h5 else None

    def decoded(self, image_id: str, path: Path, size: tuple[int, int]) -> InMemoryImage:
        """The full-resolution image of ``image_id`` from ``path``, decoded once while the budget lasts."""
        if image_id in self._decoded:
            return self._decoded[image_id]
        pixels = load_rgb(path)
        if pixels.shape[:2] != size:
            raise InputFileError(
                path,
                f"image is {pixels.shape[1]}x{pixels.shape[0]} but the view cache "
                f"{self.path} recorded {size[1]}x{size[0]}; rebuild the cache",
            )
        image = InMemoryImage(pixels)
        if self._decoded_bytes + pixels.nbytes <= self.decoded_budget_bytes:
            self._decoded[image_id] = image
            self._decoded_bytes += pixels.nbytes
        return image

    def slide_cache_path(self, image_id: str) -> Path:
        """The per-slide HDF5 cache that ``/views/<image_id>`` links to (``kind: slide``)."""
        self.position(image_id)
        link = self._file()["views"].get(image_id, getlink=True)
        if not isinstance(link, h5py.ExternalLink):
            raise InputFileError(self.path, f"/views/{image_id} is not a link to a slide cache")
        target = Path(link.filename)
        return target if target.is_absolute() else self.path.parent / target

    def image(self, image_id: str) -> CachedImage | SlideImage:
        """The :class:`CachedImage` of ``image_id``, or its :class:`SlideImage` for ``kind: slide``."""
        i = self.position(image_id)
        if self.kind == "slide":
            from zoomin.data.slide_access import SlideImage

            return SlideImage(self.constructed / self.index.paths[i], self.slide_cache_path(image_id))
        return CachedImage(
            self,
            image_id,
            self.constructed / self.index.paths[i],
            (int(self.index.heights[i]), int(self.index.widths[i])),
        )


class CachedImage:
    """An :class:`~zoomin.image_access.ImageAccess` backed by a :class:`ViewCache` and an image file.

    Views at cached scales are read from the HDF5 file; other scales, regions and patches decode the
    full-resolution image (once, on first use) and behave exactly like ``InMemoryImage``.
    """

    def __init__(self, cache: ViewCache, image_id: str, path: Path, size: tuple[int, int]):
        self._cache = cache
        self.image_id = image_id
        self.path = path
        self._size = size
        self._full: InMemoryImage | None = None

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    @property
    def channels(self) -> int:
        return 3

    def _decoded(self) -> InMemoryImage:
        if self._full is None:
            self._full = self._cache.decoded(self.image_id, self.path, self._size)
        return self._full

    def view_array(self, scale: float) -> np.ndarray:
        if scale_key(scale) in {scale_key(s) for s in self._cache.scales}:
            return self._cache.view_array(self.image_id, scale)
        log.debug("scale %s of %s not cached: computing it from the image", scale, self.image_id)
        return self._decoded().view_array(scale)

    def view(self, scale: float) -> torch.Tensor:
        return to_chw_float(self.view_array(scale))

    def view_rows(self, scale: float, top: int, stop: int) -> torch.Tensor:
        if scale_key(scale) in {scale_key(s) for s in self._cache.scales}:
            return to_chw_float(self._cache.view_rows(self.image_id, scale, top, stop))
        return self._decoded().view_rows(scale, top, stop)

    def region_view(self, top: int, left: int, size: int, scale: float) -> torch.Tensor:
        return self._decoded().region_view(top, left, size, scale)

    def patches(self, centres: torch.Tensor, size: int) -> torch.Tensor:
        return self._decoded().patches(centres, size)

    def region_array(self, top: int, left: int, size: int, scale: float) -> np.ndarray:
        return self._decoded().region_array(top, left, size, scale)

    def patch_arrays(self, centres, size: int) -> np.ndarray:
        return self._decoded().patch_arrays(centres, size)

    def mask_view(self, scale: float) -> np.ndarray | None:
        return self._cache.mask_view(self.image_id, scale)
