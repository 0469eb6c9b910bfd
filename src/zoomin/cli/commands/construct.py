"""``zoomin construct``: build a constructed dataset folder (docs/formats.md section 1).

A thin layer over :func:`zoomin.data.sources.construct_dataset`: ``--param key=value`` pairs (plus
``kind`` and ``seed`` when given) are the source's options, converted to the types the source
declares. The ``synthetic`` source generates a stand-in (see :mod:`zoomin.data.synthetic`) and
ignores ``--raw``; real-data sources read their downloads from ``--raw``.

    zoomin construct --source synthetic --kind colon --out resources/colon/constructed --seed 0 \\
        --param n_images=20 --param image_size=250
"""

from __future__ import annotations

import argparse
from pathlib import Path

from zoomin.data.options import parse_pairs
from zoomin.data.sources import SOURCES, construct_dataset


def run(args: argparse.Namespace) -> None:
    params: dict[str, object] = dict(parse_pairs(args.param))
    if args.kind is not None:
        params["kind"] = args.kind
    if args.seed is not None:
        params["seed"] = args.seed
    construct_dataset(args.source, args.raw, args.out, name=args.name, params=params)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "construct", help="build a constructed dataset folder", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--source", required=True, help=f"dataset source: {', '.join(SOURCES)}")
    parser.add_argument("--out", required=True, type=Path, help="constructed folder to write")
    parser.add_argument("--kind", help="what to construct (synthetic: colon, needle_camelyon, ...)")
    parser.add_argument("--seed", type=int, help="random seed")
    parser.add_argument("--name", help="dataset name for dataset.json (default: the source's own)")
    parser.add_argument("--raw", type=Path, default=None, help="raw download folder (real-data sources)")
    parser.add_argument(
        "--param", action="append", default=[], metavar="KEY=VALUE", help="source parameter (repeatable)"
    )
    parser.set_defaults(func=run)
