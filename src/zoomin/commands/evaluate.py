"""``zoomin evaluate``: test accuracy and inference cost of one trained run, from a config file."""

from __future__ import annotations

import argparse
from pathlib import Path

import zoomin.config as zconfig
from zoomin.commands.train import add_run_arguments, resolve


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("evaluate", help="evaluate one trained run")
    add_run_arguments(parser)
    parser.add_argument("--model", type=Path, required=True, help="model.pt written by `zoomin train`")
    parser.add_argument("--out-metrics", type=Path, required=True)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from zoomin.evaluation import evaluate

    config = resolve(args)
    measure = config.get("measure", {})
    evaluate(
        views=args.views,
        model_path=args.model,
        dataset_config=config["datasets"][args.dataset],
        run=args.run,
        seed=zconfig.run_seed(config, args.run),
        sampling=zconfig.training(config, args.dataset, args.method)["sampling_at_test"],
        out_metrics=args.out_metrics,
        device=config.get("device", "auto"),
        repeats=measure.get("repeats", 5),
        warmup=measure.get("warmup", 2),
    )
