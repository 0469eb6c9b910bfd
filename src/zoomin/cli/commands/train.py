"""``zoomin train``: train one (dataset, method, run) of a config file outside Snakemake.

The workflow's ``train`` rule does the same (both build the run's :class:`zoomin.config.run.RunSpec`
from the config with :mod:`zoomin.config.load`); this command is for running one run by hand.

    zoomin train --config config/config.yaml --dataset colon --method zoomin_lenet --run r0f0 \\
        --views results/colon/views.h5 --out-model m.pt --out-history h.csv --checkpoint-dir ckpt/
"""

from __future__ import annotations

import argparse
from pathlib import Path

from zoomin.config.load import load
from zoomin.config.run import RunSpec
from zoomin.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="train one (dataset, method, run)", description=__doc__.splitlines()[0]
    )
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


def run_spec(args: argparse.Namespace) -> RunSpec:
    """The RunSpec that the command's --config/--dataset/--method/--run name."""
    experiment = load(args.config)
    if args.dataset not in experiment.datasets:
        raise ConfigError("datasets", f"no dataset '{args.dataset}' in {args.config}")
    return experiment.run(args.dataset, args.method, args.run)


def run(args: argparse.Namespace) -> None:
    from zoomin.training.loop import RunOutputs, train

    train(run_spec(args), args.views, RunOutputs(args.checkpoint_dir, args.out_model, args.out_history))
