"""The dataset sources: one registry of what each source is, how it is constructed and downloaded.

Each source module (one per source: its raw layout, download and construction) declares ``SOURCE``,
a :class:`Source` record, and :data:`SOURCES` collects them. Everything else -- the ``zoomin
construct`` / ``zoomin download-dataset`` commands and the workflow -- asks this registry:

* :func:`construct_dataset` checks and converts the options against the builder's signature
  (:func:`zoomin.data.options.coerce_params`) and builds the constructed folder (docs/formats.md);
* :func:`download_dataset` does the same for the download and writes ``<raw>/.complete`` last;
* :func:`download_options` adds the construction options a download also needs (fMoW downloads
  only the images its construction will pick);
* ``Source.kind`` says whether the constructed dataset holds images or whole-slide images.

Helpers shared by several builders live in :mod:`zoomin.data.sources.common` (images, files,
masks, metadata) and :mod:`zoomin.data.sources.slides` (slides).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoomin.atomic import atomic_path
from zoomin.data.options import coerce_params
from zoomin.errors import ConfigError

MARKER = ".complete"  # written last by a download; the construction waits for it
KINDS = ("image", "slide")


@dataclass(frozen=True)
class Source:
    """One dataset source.

    ``construct(raw_dir, out_dir, **options)`` builds the constructed folder (``raw_dir`` is None
    for sources that need no raw files); ``download(raw_dir, **options)`` fetches the raw files, or
    is None when the source cannot be downloaded. The options of both are their keyword-only
    parameters. ``download_params_from_construct`` names construction options the download needs too.
    """

    name: str
    kind: str  # "image" or "slide": what the constructed dataset holds
    construct: Callable[..., Any]
    download: Callable[..., Any] | None = None
    download_params_from_construct: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"source {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")


def _collect() -> dict[str, Source]:
    # Imported here, not at the top: every source module imports Source from this package.
    from zoomin.data.sources import (
        camelyon16,
        colon_cancer,
        fmow,
        image_folder,
        needle_camelyon,
        slide_folder,
        synthetic,
        synthetic_camelyon16,
        traffic_signs,
    )

    modules = (
        synthetic, synthetic_camelyon16, colon_cancer, traffic_signs, fmow, camelyon16, needle_camelyon,
        image_folder, slide_folder,
    )
    return {module.SOURCE.name: module.SOURCE for module in modules}


SOURCES: dict[str, Source] = _collect()


def get_source(name: str) -> Source:
    """The source called ``name``; a ConfigError ``source`` naming the known ones otherwise."""
    try:
        return SOURCES[name]
    except KeyError:
        raise ConfigError("source", f"unknown source {name!r} (known: {', '.join(SOURCES)})") from None


def downloadable() -> list[str]:
    """Names of the sources that can be downloaded."""
    return [name for name, source in SOURCES.items() if source.download is not None]


def construct_dataset(
    source: str,
    raw_dir: str | Path | None,
    out_dir: str | Path,
    name: str | None = None,
    params: Mapping[str, Any] | None = None,
) -> None:
    """Build the constructed dataset of ``source`` from ``raw_dir`` into ``out_dir``.

    ``params`` are the construction options (YAML values or ``--param`` strings), checked and
    converted against the builder's signature; ``name`` (the dataset name in dataset.json) is added
    when given.
    """
    record = get_source(source)
    options = dict(params or {})
    if name is not None:
        options["name"] = name
    options = coerce_params(record.construct, options, "construct", f"source {source!r}")
    record.construct(None if raw_dir is None else Path(raw_dir), Path(out_dir), **options)


def download_dataset(source: str, raw_dir: str | Path, params: Mapping[str, Any]) -> None:
    """Download the raw files of ``source`` into ``raw_dir``; write ``raw_dir/.complete`` (JSON) last.

    The marker is removed first, so an interrupted download never looks complete; the folder itself
    is kept, with its partial ``.part`` files for resuming.
    """
    record = get_source(source)
    if record.download is None:
        raise ConfigError(
            "source", f"source {source!r} has nothing to download (downloadable: {', '.join(downloadable())})"
        )
    options = coerce_params(record.download, params, "download", f"source {source!r}")
    raw_dir = Path(raw_dir)
    (raw_dir / MARKER).unlink(missing_ok=True)
    record.download(raw_dir, **options)
    finished = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with atomic_path(raw_dir / MARKER) as tmp:
        tmp.write_text(
            json.dumps({"dataset": source, "params": dict(params), "finished": finished}, indent=2, default=str) + "\n",
            encoding="utf-8",
        )


def download_options(source: str, construct_params: Mapping[str, Any], download_params: Mapping[str, Any]) -> dict:
    """The options of ``source``'s download: the construction options it shares, then its own.

    A download option given explicitly wins over the construction option of the same name.
    """
    shared = get_source(source).download_params_from_construct
    return {**{key: construct_params[key] for key in shared if key in construct_params}, **download_params}
