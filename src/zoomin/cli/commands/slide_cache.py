"""``zoomin slide-cache``: build the HDF5 cache of one whole-slide image (docs/formats.md section 3)."""

from __future__ import annotations

import argparse
from pathlib import Path

from zoomin.data.slide_cache import DEFAULT_TISSUE_DOWNSAMPLE, build_slide_cache
from zoomin.data.slide_reader import DEFAULT_MAX_READ_PIXELS


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``slide-cache`` subcommand."""
    parser = subparsers.add_parser(
        "slide-cache",
        help="build the HDF5 view/tissue cache of one slide",
        description=__doc__,
    )
    parser.add_argument("--slide", required=True, type=Path, help="slide file (pyramidal TIFF, SVS, ...)")
    parser.add_argument("--out", required=True, type=Path, help="output .h5 file (written atomically)")
    parser.add_argument(
        "--scales", required=True, type=float, nargs="+", help="view scales to store, e.g. 0.03125 0.0625"
    )
    parser.add_argument("--tile-size", required=True, type=int, help="model tile side in level-0 pixels")
    parser.add_argument(
        "--tissue-downsample",
        type=float,
        default=DEFAULT_TISSUE_DOWNSAMPLE,
        help="downsample of the view the tissue mask is computed on (default %(default)s)",
    )
    parser.add_argument(
        "--min-tissue-fraction",
        type=float,
        default=0.0,
        help="a tile is tissue when more than this fraction of it is (default %(default)s: any)",
    )
    parser.add_argument(
        "--max-read-pixels",
        type=int,
        default=DEFAULT_MAX_READ_PIXELS,
        help="refuse slides whose best level for a view is larger than this (default %(default)s)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> None:
    build_slide_cache(
        args.slide,
        args.out,
        args.scales,
        args.tile_size,
        tissue_downsample=args.tissue_downsample,
        min_tissue_fraction=args.min_tissue_fraction,
        max_read_pixels=args.max_read_pixels,
    )
