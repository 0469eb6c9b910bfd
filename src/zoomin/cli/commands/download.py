"""``zoomin download`` (one URL to one file) and ``zoomin download-dataset`` (a dataset's raw files).

``download-dataset`` is a thin layer over :func:`zoomin.data.sources.download_dataset`, which writes
``<out>/.complete`` (JSON) last, after every file is in place, so the workflow can use it as the
marker of a complete download (the folder itself is never deleted by a rerun, which keeps partial
``.part`` files for resuming).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from zoomin.data.download import download_file
from zoomin.data.options import parse_pairs
from zoomin.data.sources import download_dataset, downloadable


def run_download(args: argparse.Namespace) -> None:
    """Download one URL to a file: resumes a .part file, retries, verifies a checksum if given."""
    download_file(
        args.url, args.out, md5=args.md5, sha256=args.sha256, retries=args.retries, timeout=args.timeout
    )


def run_download_dataset(args: argparse.Namespace) -> None:
    """Download a dataset's raw files into --out, then write the completion marker."""
    download_dataset(args.dataset, Path(args.out), parse_pairs(args.param))


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
    dataset.add_argument("--dataset", required=True, choices=sorted(downloadable()))
    dataset.add_argument("--out", required=True, help="raw folder, e.g. resources/<dataset>/raw")
    dataset.add_argument(
        "--param", action="append", metavar="KEY=VALUE", help="source-specific option (repeatable), e.g. n_train=1500"
    )
    dataset.set_defaults(func=run_download_dataset)
