"""``zoomin download`` (one URL to one file) and ``zoomin download-dataset`` (a dataset's raw files).

``download-dataset`` writes ``<out>/.complete`` (JSON) last, after every file is in place, so the
workflow can use it as the marker of a complete download (the folder itself is never deleted by a
rerun, which keeps partial ``.part`` files for resuming).
"""

from __future__ import annotations

import argparse
import inspect
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zoomin.atomic import atomic_path
from zoomin.data.download import download_file
from zoomin.data.sources import camelyon16, colon_cancer, fmow, traffic_signs
from zoomin.errors import UserError

DOWNLOADERS: dict[str, Callable[..., Any]] = {
    "colon_cancer": colon_cancer.download,
    "traffic_signs": traffic_signs.download,
    "fmow": fmow.download,
    "camelyon16": camelyon16.download,
    "needle_camelyon": camelyon16.download,  # built from the Camelyon16 slides
}
MARKER = ".complete"  # the marker the construction rule waits for


def parse_params(items: list[str] | None) -> dict[str, str]:
    """``["k=v", ...]`` -> ``{"k": "v"}``; values stay strings (each source converts its own)."""
    params: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--param expects key=value, got {item!r}")
        params[key.strip()] = value
    return params


def check_params(function: Callable[..., Any], params: dict[str, Any], what: str) -> None:
    """Refuse parameters ``function`` does not accept, listing the ones it does."""
    signature = inspect.signature(function)
    accepted = list(signature.parameters)[1:]  # the first is the raw folder
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise UserError(f"{what} does not take parameter(s) {', '.join(unknown)} (it takes: {', '.join(accepted)})")


def run_download(args: argparse.Namespace) -> None:
    """Download one URL to a file: resumes a .part file, retries, verifies a checksum if given."""
    download_file(
        args.url, args.out, md5=args.md5, sha256=args.sha256, retries=args.retries, timeout=args.timeout
    )


def run_download_dataset(args: argparse.Namespace) -> None:
    """Download a dataset's raw files into --out, then write the completion marker."""
    download_dataset(args.dataset, Path(args.out), parse_params(args.param))


def download_dataset(source: str, out: Path, params: dict[str, Any]) -> None:
    """Download the raw files of ``source`` into ``out``; write ``out/.complete`` last."""
    if source not in DOWNLOADERS:
        raise UserError(f"source '{source}' has nothing to download (downloadable: {', '.join(DOWNLOADERS)})")
    function = DOWNLOADERS[source]
    check_params(function, params, f"download-dataset --dataset {source}")
    out = Path(out)
    (out / MARKER).unlink(missing_ok=True)
    function(out, **params)
    with atomic_path(out / MARKER) as tmp:
        tmp.write_text(
            json.dumps(
                {"dataset": source, "params": params, "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
                indent=2,
            )
            + "\n",
            encoding="utf-8",
        )


def register(subparsers: argparse._SubParsersAction) -> None:
    one = subparsers.add_parser(
        "download", help="download one URL to a file (resume, retries, checksum)", description=run_download.__doc__
    )
    one.add_argument("--url", required=True, help="HTTP(S) URL")
    one.add_argument("--out", required=True, help="destination file")
    one.add_argument("--md5", help="expected MD5 (hex); a mismatching download is deleted")
    one.add_argument("--sha256", help="expected SHA-256 (hex)")
    one.add_argument("--retries", type=int, default=3, help="retries after a failed attempt (default 3)")
    one.add_argument("--timeout", type=float, default=60.0, help="seconds without data before retrying")
    one.set_defaults(func=run_download)

    dataset = subparsers.add_parser(
        "download-dataset",
        help="download the raw files of a public dataset into a folder",
        description="Download a dataset's raw files; writes <out>/.complete when complete.",
    )
    dataset.add_argument("--dataset", required=True, choices=sorted(DOWNLOADERS))
    dataset.add_argument("--out", required=True, help="raw folder, e.g. resources/<dataset>/raw")
    dataset.add_argument(
        "--param", action="append", metavar="KEY=VALUE", help="source-specific option (repeatable), e.g. n_train=1500"
    )
    dataset.set_defaults(func=run_download_dataset)
