"""The ``zoomin`` command line: one subcommand per workflow step.

Each subcommand lives in its own module under :mod:`zoomin.cli.commands` and exposes
``register(subparsers)`` (adds its parser, sets ``func``) -- see any module there for the pattern;
a new subcommand is one module there and one line in :data:`SUBCOMMAND_MODULES`.
Errors that users can fix (bad input, bad config) are raised as :class:`zoomin.errors.UserError`
and printed as one clear line with exit status 1, without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from zoomin.errors import UserError

SUBCOMMAND_MODULES = [
    "zoomin.cli.commands.construct",
    "zoomin.cli.commands.download",
    "zoomin.cli.commands.build_views",
    "zoomin.cli.commands.slide_cache",
    "zoomin.cli.commands.train",
    "zoomin.cli.commands.evaluate",
    "zoomin.cli.commands.predict",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zoomin", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        args.func(args)
    except UserError as error:
        print(f"zoomin {args.command}: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
