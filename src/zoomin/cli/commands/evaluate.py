"""``zoomin evaluate``: test accuracy and inference cost of one trained run of a config file."""

from __future__ import annotations

import argparse
from pathlib import Path

from zoomin.cli.commands.train import add_run_arguments, run_spec


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("evaluate", help="evaluate one trained run", description=__doc__.splitlines()[0])
    add_run_arguments(parser)
    parser.add_argument("--model", type=Path, required=True, help="model.pt written by `zoomin train`")
    parser.add_argument("--out-metrics", type=Path, required=True)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from zoomin.training.evaluate import evaluate

    evaluate(run_spec(args), args.views, args.model, args.out_metrics)
