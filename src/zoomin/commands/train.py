"""``zoomin train``: train one (dataset, method, run) outside Snakemake, from a config file.

The workflow's ``train`` rule does the same through workflow/scripts/train.py; this command is for
debugging one run by hand and for the kill-and-resume tests.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import zoomin.config as zconfig
from zoomin.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train one (dataset, method, run)")
    add_run_arguments(parser)
    parser.add_argument("--out-model", type=Path, required=True)
    parser.add_argument("--out-history", type=Path, required=True)
    parser.add_argument("--checkpoint-dir", type=Path, required=True)
    parser.set_defaults(func=run)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True, help="workflow config YAML")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--method", required=True)
    parser.add_argument("--run", required=True, help="run id, e.g. r0f1 or s0")
    parser.add_argument("--views", type=Path, required=True, help="the dataset's views.h5")


def resolve(args: argparse.Namespace) -> dict:
    config = zconfig.load(args.config)
    if args.dataset not in config["datasets"]:
        raise ConfigError("datasets", f"no dataset '{args.dataset}' in {args.config}")
    if args.method not in config["datasets"][args.dataset]["methods"]:
        raise ConfigError(f"datasets.{args.dataset}.methods", f"method '{args.method}' is not listed")
    if args.run not in zconfig.run_ids(config["datasets"][args.dataset]):
        raise ConfigError(f"datasets.{args.dataset}.runs", f"run '{args.run}' is not one of its runs")
    return config


def run(args: argparse.Namespace) -> None:
    from zoomin.training import TrainingJob, train

    config = resolve(args)
    train(
        TrainingJob(
            views=args.views,
            model_type=config["methods"][args.method]["model"],
            model_params=zconfig.model_params(config, args.dataset, args.method),
            training=zconfig.training(config, args.dataset, args.method),
            dataset_config=config["datasets"][args.dataset],
            run=args.run,
            seed=zconfig.run_seed(config, args.run),
            checkpoint_dir=args.checkpoint_dir,
            out_model=args.out_model,
            out_history=args.out_history,
            device=config.get("device", "auto"),
            mixed_precision=config.get("mixed_precision", False),
        )
    )
