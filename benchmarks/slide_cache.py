"""Benchmark: HDF5 slide cache of a synthetic 50,000 x 50,000 slide, and one Zoom-In-like read pattern.

Not a test. Three phases, the last two each in a fresh child process so their peak RSS is their own:

1. ``write``: a tiled (256 px, JPEG) pyramidal TIFF, generated tile by tile (level 0 is never in
   memory): glass background, elliptic tissue sections of textured tiles, a few small "tumour"
   patches; levels halve down to < 1000 px.
2. ``build``: :func:`zoomin.data.slide_cache.build_slide_cache` at the given scales; reports wall
   time, peak RSS (``ru_maxrss``) and the time spent inside OpenSlide ``read_region`` (the share of
   the build that is decoding the pyramid rather than our code).
3. ``infer``: what one Zoom-In forward pass asks of a slide: the stage-1 view from the cache,
   ``--regions`` stage-2 region views of tissue tiles, and for each of ``--patch-sizes`` (27 and
   224 px) one call for ``--patches`` (N = 100) level-0 sub-tiles inside those tiles; reports the
   level-0 pixels read as a fraction of level 0 (the two sizes together: a pessimistic count).

Usage::

    python benchmarks/slide_cache.py [--size 50000] [--workdir /tmp/zoomin-bench] [--keep]

The big TIFF is deleted at the end unless ``--keep`` (it is reused when it already exists).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

TILE = 256


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM; unlike ru_maxrss it is not inherited across exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _tile_palette(rng: np.random.Generator) -> dict[str, list[np.ndarray]]:
    """A few prebuilt 256x256 tiles per kind; the slide is a mosaic of them (cheap to generate)."""
    y, x = np.mgrid[0:TILE, 0:TILE]
    palette: dict[str, list[np.ndarray]] = {"background": [], "tissue": [], "tumour": []}
    palette["background"].append(np.full((TILE, TILE, 3), (238, 236, 240), np.uint8))
    for k in range(8):
        noise = rng.integers(0, 30, (TILE, TILE), dtype=np.int16)
        wave = (12 * np.sin((x + 7 * k) / 9.0) * np.cos((y - 5 * k) / 13.0)).astype(np.int16)
        base = np.stack([220 - noise - wave, 140 + noise // 2 + wave, 195 + noise // 3], axis=-1)
        palette["tissue"].append(np.clip(base, 0, 255).astype(np.uint8))
        purple = np.stack([150 + noise - wave, 60 + noise // 2, 160 + noise // 3 + wave], axis=-1)
        palette["tumour"].append(np.clip(purple, 0, 255).astype(np.uint8))
    return palette


def _kind_map(rows: int, cols: int) -> np.ndarray:
    """Per-tile kind (0 background, 1 tissue, 2 tumour) on a grid of rows x cols tiles."""
    ty, tx = np.mgrid[0:rows, 0:cols]
    u, v = (ty + 0.5) / rows, (tx + 0.5) / cols
    tissue = ((u - 0.35) / 0.25) ** 2 + ((v - 0.3) / 0.2) ** 2 < 1
    tissue |= ((u - 0.6) / 0.3) ** 2 + ((v - 0.68) / 0.22) ** 2 < 1
    kinds = tissue.astype(np.uint8)
    for cu, cv in [(0.3, 0.25), (0.7, 0.7), (0.55, 0.62)]:
        kinds[(np.abs(u - cu) < 0.004) & (np.abs(v - cv) < 0.004) & tissue] = 2
    return kinds


def write_slide(path: Path, size: int, seed: int = 0) -> dict[str, float]:
    import tifffile
    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    palette = _tile_palette(rng)
    names = ["background", "tissue", "tumour"]
    started = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.tif")
    with tifffile.TiffWriter(tmp, bigtiff=True) as tif:
        side, level = size, 0
        while True:
            rows, cols = -(-side // TILE), -(-side // TILE)
            kinds = _kind_map(rows, cols)
            choice = rng.integers(0, 8, (rows, cols))

            def tiles(kinds=kinds, choice=choice, rows=rows, cols=cols, level=level):
                for r in tqdm(range(rows), desc=f"level {level}", unit="row", leave=False):
                    for c in range(cols):
                        options = palette[names[kinds[r, c]]]
                        yield options[choice[r, c] % len(options)]

            per_cm = 1e4 / (0.25 * 2**level)
            tif.write(
                tiles(),
                shape=(side, side, 3),
                dtype=np.uint8,
                tile=(TILE, TILE),
                photometric="rgb",
                compression="jpeg",
                compressionargs={"level": 90},
                subfiletype=0 if level == 0 else 1,
                resolution=(per_cm, per_cm),
                resolutionunit="CENTIMETER",
                metadata=None,
                maxworkers=2,
            )
            if side < 1000:
                break
            side, level = side // 2, level + 1
    os.replace(tmp, path)
    return {"write_s": time.perf_counter() - started, "levels": level + 1, "file_gb": path.stat().st_size / 1e9}


def phase_build(slide: Path, out: Path, scales: list[float], tile_size: int) -> dict[str, float]:
    import zoomin.data.slide_cache as slide_cache
    from zoomin.data.slide_reader import SlideReader

    rss_imports = peak_rss_mb()
    spent: list[list[float]] = []
    stats: list = []

    class TimedReader(SlideReader):
        @property
        def slide(self):
            fresh = self._slide is None
            handle = SlideReader.slide.fget(self)
            if fresh:
                spent.append(_timed_reads_handle(handle))
                stats.append(self.read_stats)
            return handle

    slide_cache.SlideReader = TimedReader
    started = time.perf_counter()
    slide_cache.build_slide_cache(slide, out, scales, tile_size)
    wall = time.perf_counter() - started
    return {
        "build_s": wall,
        "openslide_read_s": sum(s[0] for s in spent),
        "openslide_share": sum(s[0] for s in spent) / wall,
        "pixels_decoded": float(sum(sum(s.values()) for s in stats)),
        "peak_rss_mb": peak_rss_mb(),
        "rss_after_imports_mb": rss_imports,
        "cache_mb": out.stat().st_size / 1e6,
    }


def _timed_reads_handle(handle) -> list[float]:
    spent = [0.0]
    original = handle.read_region

    def read_region(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - start

    handle.read_region = read_region
    return spent


def phase_infer(
    slide: Path, cache: Path, scale1: float, tile: int, scale2: float, regions: int, patches: int, sizes: list[int]
) -> dict:
    import torch

    from zoomin.data.slide_access import SlideImage

    rss_imports = peak_rss_mb()
    rng = np.random.default_rng(1)
    started = time.perf_counter()
    image = SlideImage(slide, cache)
    height, width = image.size
    view = image.view(scale1)
    tissue_tiles = torch.nonzero(image.tile_mask(tile)).numpy()
    picks = tissue_tiles[rng.choice(len(tissue_tiles), size=min(regions, len(tissue_tiles)), replace=False)]
    for row, col in picks:
        image.region_view(int(row) * tile, int(col) * tile, tile, scale2)
    level0_max = 0
    for size in sizes:  # one call per sub-tile size, N centres inside the sampled tiles (as the model does)
        pick = picks[rng.integers(len(picks), size=patches)]
        centres = torch.from_numpy(pick * tile + rng.integers(0, tile, (patches, 2)))
        before = image.read_stats[0]
        image.patches(centres, int(size))
        level0_max = max(level0_max, (image.read_stats[0] - before) // patches)
    wall = time.perf_counter() - started
    level0 = image.read_stats[0]
    return {
        "infer_s": wall,
        "view_shape": list(view.shape),
        "regions": len(picks),
        "patches": patches,
        "patch_sizes": sizes,
        "level0_pixels_read": level0,
        "level0_fraction": level0 / float(height * width),
        "largest_level0_read_per_patch": level0_max,
        "pixels_read_by_level": {int(k): int(v) for k, v in sorted(image.read_stats.items())},
        "rss_after_imports_mb": rss_imports,
        "peak_rss_mb": peak_rss_mb(),
    }


def _child(args: list[str]) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, *args], check=True, capture_output=True, text=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=50_000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/zoomin-bench"))
    parser.add_argument("--scales", type=float, nargs="+", default=[1 / 16, 1 / 32])
    parser.add_argument("--tile-size", type=int, default=1024)
    parser.add_argument("--scale2", type=float, default=1 / 8)
    parser.add_argument("--regions", type=int, default=10)
    parser.add_argument("--patches", type=int, default=100, help="sub-tiles per call (N)")
    parser.add_argument("--patch-sizes", type=int, nargs="+", default=[27, 224], help="one call per size")
    parser.add_argument("--keep", action="store_true", help="keep the synthetic slide")
    parser.add_argument("--phase", choices=["all", "build", "infer"], default="all", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    slide = args.workdir / f"synthetic_{args.size}.tif"
    cache = args.workdir / f"synthetic_{args.size}.h5"
    if args.phase == "build":
        print(json.dumps(phase_build(slide, cache, args.scales, args.tile_size)))
        return
    if args.phase == "infer":
        print(json.dumps(phase_infer(
            slide, cache, min(args.scales), args.tile_size, args.scale2, args.regions, args.patches, args.patch_sizes
        )))
        return
    report: dict = {
        "machine": (
            f"{platform.machine()} {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}"
        ),
        "size": args.size,
        "scales": args.scales,
        "tile_size": args.tile_size,
    }
    try:
        if not slide.exists():
            report["write"] = write_slide(slide, args.size)
        common = ["--size", str(args.size), "--workdir", str(args.workdir), "--tile-size", str(args.tile_size)]
        common += ["--scales", *map(str, args.scales)]
        report["build"] = _child([*common, "--phase", "build"])
        report["infer"] = _child(
            [*common, "--phase", "infer", "--scale2", str(args.scale2), "--regions", str(args.regions),
             "--patches", str(args.patches), "--patch-sizes", *map(str, args.patch_sizes)]
        )
    finally:
        if not args.keep:
            slide.unlink(missing_ok=True)
            cache.unlink(missing_ok=True)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
