"""``zoomin predict``: apply a trained model to images, slides or folders (docs/predict.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from zoomin.config.outputs import PredictSettings
from zoomin.config.run import SAMPLING_AT_TEST


def register(subparsers: argparse._SubParsersAction) -> None:
    defaults = PredictSettings()
    parser = subparsers.add_parser(
        "predict",
        help="predict on new images or slides: CSV, heatmaps, GeoJSON for QuPath",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("model", type=Path, help="a trained run's model.pt (results/<dataset>/<method>/<run>/)")
    parser.add_argument("inputs", type=Path, nargs="+", help="image files, slide files or folders of them")
    parser.add_argument("--out", type=Path, required=True, help="output folder (written only when all succeeded)")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of the draws (default: the run's)")
    parser.add_argument(
        "--sampling", choices=SAMPLING_AT_TEST, default=defaults.sampling,
        help="sample (seeded draws) or topk (deterministic); default: the run's sampling_at_test",
    )
    parser.add_argument(
        "--draws", type=int, default=defaults.draws,
        help="test-time draws averaged per image (default: the run's training.test_draws)",
    )
    parser.add_argument("--asap", action="store_true", help="also write ASAP XML annotations")
    parser.add_argument(
        "--thumbnail", type=int, default=defaults.thumbnail, help="heatmap thumbnail side, px (default %(default)s)"
    )
    parser.add_argument(
        "--ignore-mpp", action="store_true", help="predict on slides whose pixel size differs from the model's"
    )
    parser.add_argument("--cache", type=Path, help="keep the slides' view caches here (default: a temporary folder)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    from zoomin.config.records import ParamError
    from zoomin.errors import ConfigError
    from zoomin.predict import predict

    try:
        settings = PredictSettings(
            sampling=args.sampling, seed=args.seed, draws=args.draws, asap=args.asap, thumbnail=args.thumbnail,
            ignore_mpp=args.ignore_mpp,
        )
    except ParamError as error:
        raise ConfigError(f"--{error.field.replace('_', '-')}", error.problem) from None
    predict(args.model, args.inputs, args.out, settings, device=args.device, cache_dir=args.cache)
