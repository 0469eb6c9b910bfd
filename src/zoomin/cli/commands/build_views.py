"""``zoomin build-views``: the HDF5 view cache of a constructed dataset (docs/formats.md section 2).

    zoomin build-views --constructed resources/colon/constructed --scales 0.1 0.2 \\
        --out results/colon/views.h5

For a ``kind: slide`` dataset, ``--slides`` names the folder of per-slide caches
(``zoomin slide-cache``, one ``<image_id>.h5`` per slide) that ``views.h5`` links to.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def run(args: argparse.Namespace) -> None:
    from zoomin.data.view_cache import build_slide_view_index, build_view_cache

    if args.slides is not None:
        build_slide_view_index(args.constructed, args.slides, args.scales, args.out)
    else:
        build_view_cache(args.constructed, args.scales, args.out, progress=not args.no_progress)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "build-views", help="cache low-resolution views in HDF5", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--constructed", required=True, type=Path, help="constructed dataset folder")
    parser.add_argument("--scales", required=True, type=float, nargs="+", help="view scales, e.g. 0.1 0.2")
    parser.add_argument("--out", required=True, type=Path, help="views.h5 to write")
    parser.add_argument(
        "--slides", type=Path, default=None, help="kind: slide -- folder of the per-slide caches to link"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)
