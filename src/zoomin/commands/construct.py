"""``zoomin construct``: build a constructed dataset folder (docs/formats.md section 1).

Sources are looked up in :data:`SOURCES`, a dict mapping a source name to a callable
``(raw_dir, out_dir, **params)``. ``params`` are the ``--param key=value`` pairs (values parsed as
int, float, bool or string) plus ``kind``, ``seed`` and ``name`` when given on the command line. The
``synthetic`` source generates a stand-in (see :mod:`zoomin.data.synthetic`) and ignores ``raw_dir``;
real-data sources read their downloads from ``raw_dir``.

    zoomin construct --source synthetic --kind colon --out resources/colon/constructed --seed 0 \\
        --param n_images=20 --param image_size=250
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zoomin.data.sources import (
    camelyon16,
    colon_cancer,
    common,
    fmow,
    image_folder,
    needle_camelyon,
    slide_folder,
    traffic_signs,
)
from zoomin.errors import ConfigError


def construct_synthetic(raw_dir: Path | None, out_dir: Path, **params: Any) -> None:
    """Generate a synthetic stand-in; needs ``kind`` and ``seed`` in ``params``."""
    from zoomin.data.synthetic import generate

    kind, seed = params.pop("kind", None), params.pop("seed", None)
    if kind is None:
        raise ConfigError("construct.kind", "the synthetic source needs --kind (e.g. colon)")
    if seed is None:
        raise ConfigError("construct.seed", "the synthetic source needs --seed")
    generate(str(kind), out_dir, seed, **params)


SOURCES: dict[str, Callable[..., Any]] = {
    "synthetic": construct_synthetic,
    "colon_cancer": common.checked(colon_cancer.construct, "colon_cancer"),
    "traffic_signs": common.checked(traffic_signs.construct, "traffic_signs"),
    "fmow": common.checked(fmow.construct, "fmow"),
    "image_folder": common.checked(image_folder.construct, "image_folder"),
    "camelyon16": common.checked(camelyon16.construct, "camelyon16"),
    "needle_camelyon": common.checked(needle_camelyon.construct, "needle_camelyon"),
    "slide_folder": common.checked(slide_folder.construct, "slide_folder"),
}


def parse_value(text: str) -> Any:
    """``"3"`` -> 3, ``"0.5"`` -> 0.5, ``"true"`` -> True, anything else stays a string."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def parse_params(pairs: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError("--param", f"expected key=value, got {pair!r}")
        params[key.strip()] = parse_value(value.strip())
    return params


def construct(
    source: str,
    raw_dir: str | Path | None,
    out_dir: str | Path,
    name: str | None = None,
    params: dict[str, Any] | None = None,
) -> None:
    """Dispatch to ``SOURCES[source](raw_dir, out_dir, **params)`` (``name`` added when given)."""
    try:
        builder = SOURCES[source]
    except KeyError:
        raise ConfigError("source", f"unknown source {source!r} (known: {sorted(SOURCES)})") from None
    params = dict(params or {})
    if name is not None:
        params["name"] = name
    builder(None if raw_dir is None else Path(raw_dir), Path(out_dir), **params)


def run(args: argparse.Namespace) -> None:
    params = parse_params(args.param)
    if args.kind is not None:
        params["kind"] = args.kind
    if args.seed is not None:
        params["seed"] = args.seed
    construct(args.source, args.raw, args.out, name=args.name, params=params)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "construct", help="build a constructed dataset folder", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--source", required=True, help=f"dataset source: {', '.join(SOURCES)} (more may be added)")
    parser.add_argument("--out", required=True, type=Path, help="constructed folder to write")
    parser.add_argument("--kind", help="what to construct (synthetic: colon, needle_camelyon, ...)")
    parser.add_argument("--seed", type=int, help="random seed")
    parser.add_argument("--name", help="dataset name for dataset.json (default: the source's own)")
    parser.add_argument("--raw", type=Path, default=None, help="raw download folder (real-data sources)")
    parser.add_argument(
        "--param", action="append", default=[], metavar="KEY=VALUE", help="source parameter (repeatable)"
    )
    parser.set_defaults(func=run)
