"""Benchmark: one Zoom-In inference on a synthetic gigapixel slide, two stages against three.

Not a test. For each side (default 100,000² and 200,000²): a synthetic pyramidal slide with the
layout and tile palette of ``benchmarks/slide_cache.py`` (glass, two elliptic tissue sections, a
few tumour patches; 256 px JPEG tiles, levels halving down to < 1000 px), written with each palette
tile JPEG-encoded once (:func:`write_palette_slide`: level 0 is never in memory, and a 200,000² slide
takes a minute instead of the ten that encoding every tile would), then for each method:

1. ``build``: the slide's HDF5 view cache at the method's stage-1 scale (``slide_cache.phase_build``):
   wall time, peak RSS, pyramid pixels decoded.
2. ``infer``: the method at the Camelyon16 settings of ``config/paper.yaml`` (random weights: the
   cost does not depend on them, only which regions are drawn) on a ``SlideImage`` over that cache,
   called as ``zoomin predict`` and the evaluation call it: eval mode, no autograd, a CPU generator
   seeded ``--seed``, glibc's malloc as it comes (``default``; with ``--allocators default
   fixed-threshold`` also a second process whose malloc serves every block above 128 KiB by
   ``mmap``, see ``zoomin.predict.host_memory``). Methods (``--methods``):

   * ``zoomin_lenet``: Zoom-In, K = 2 (tile 4096, sub-tile 256, s1 1/64, s2 1/16, N 100, LeNet);
   * ``zoomin_k2``: the same two stages as the K-stage model ``zoomin_k`` (the same draws; its last
     stage draws tile by tile at inference, so its maps are dropped once drawn -- not here, where
     they are the output's, but its Gumbel noise is one tile's at a time);
   * ``zoomin_k3``: ``zoomin_k3`` of paper.yaml, K = 3 (16,384 px regions at 1/256, 4096 px tiles
     at 1/64, then Zoom-In's sub-tiles at 1/16 and level 0, N 100).

   Reported: wall and CPU time of the first (cold) and of a second inference, and the load average
   (the machine may be shared); RSS after the imports and peak RSS after the inference
   (``VmRSS``/``VmHWM``); the pixels read at each scale, from the cache (the stage-1 view, band by
   band) and from each pyramid level (``read_stats``), and the level-0 pixels as a fraction of level
   0; the stage-1 cells opened and the tiles whose stage-``K`` view was read; the peak tensor
   memory as the evaluation measures it (``zoomin.measure``: parameters + forward peak, dispatch
   tracker); then the same inference with the chunks switched off (``chunk_pixels`` so large that
   every net runs over all of its inputs at once) for its time and peak tensor memory.

Usage::

    python benchmarks/gigapixel.py [--sizes 100000 200000] [--methods zoomin_lenet zoomin_k2 zoomin_k3]
        [--workdir /tmp/zoomin-giga] [--keep] [--threads N] [--allocators default fixed-threshold] [--out JSON]

Each slide is deleted once measured unless ``--keep`` (an existing one is reused). The slide of
200,000² takes about 2.2 GB; the script checks the free space first and skips sizes that do not fit.
Prints one JSON report; ``--out`` also writes it to a file.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import slide_cache as slide_bench  # noqa: E402  (benchmarks/slide_cache.py: its slide layout, phase_build, peak_rss_mb)

REPO = Path(__file__).resolve().parents[1]
BYTES_PER_PIXEL = 0.06  # on-disk size of the palette slide per level-0 pixel, pyramid included (measured: 0.055)
ALLOCATORS = ("default", "fixed-threshold")  # glibc malloc as it comes, or with mallopt (fix_mmap_threshold)
METHODS = ("zoomin_lenet", "zoomin_k2", "zoomin_k3")
TARGETS = {
    "wall_s": 5.0,
    "rss_above_imports_mb": 200.0,
    "level0_fraction": 0.01,
    "tensor_peak_mb": 71.76,
    "k3_pixels_growth_100k_to_200k": 1.25,
}


def current_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def write_palette_slide(path: Path, size: int, seed: int = 0) -> dict[str, float]:
    """The slide of ``slide_cache.write_slide`` (same layout, palette and pyramid), each of its few
    palette tiles JPEG-encoded once and written as those bytes: the cost is the disk, not the codec."""
    import imagecodecs
    import tifffile

    rng = np.random.default_rng(seed)
    palette = slide_bench._tile_palette(rng)
    names = ["background", "tissue", "tumour"]
    encoded = {name: [imagecodecs.jpeg_encode(tile, level=90) for tile in palette[name]] for name in names}
    started = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.tif")
    tile = slide_bench.TILE
    with tifffile.TiffWriter(tmp, bigtiff=True) as tif:
        side, level = size, 0
        while True:
            rows = -(-side // tile)
            kinds = slide_bench._kind_map(rows, rows)
            choice = rng.integers(0, 8, (rows, rows))

            def tiles(kinds=kinds, choice=choice, rows=rows):
                for r in range(rows):
                    for c in range(rows):
                        options = encoded[names[kinds[r, c]]]
                        yield options[choice[r, c] % len(options)]

            per_cm = 1e4 / (0.25 * 2**level)
            tif.write(
                tiles(), shape=(side, side, 3), dtype=np.uint8, tile=(tile, tile), photometric="rgb",
                compression="jpeg", subfiletype=0 if level == 0 else 1, resolution=(per_cm, per_cm),
                resolutionunit="CENTIMETER", metadata=None,
            )
            if side < 1000:
                break
            side, level = side // 2, level + 1
    os.replace(tmp, path)
    return {"write_s": time.perf_counter() - started, "levels": level + 1, "file_gb": path.stat().st_size / 1e9}


def method_params(method: str):
    """``(model type, params)`` of ``method`` on config/paper.yaml's camelyon16 (module docstring)."""
    from zoomin.config.load import load
    from zoomin.models.params import ZoomInKParams

    config = load(REPO / "config" / "paper.yaml")
    if method == "zoomin_k2":  # Zoom-In's two stages as a zoomin_k
        zoomin = config.model("camelyon16", "zoomin_lenet").params
        regions, scales = [zoomin.tile], [zoomin.s1, zoomin.s2]
        return "zoomin_k", ZoomInKParams(regions=regions, scales=scales, subtile=zoomin.subtile, n=zoomin.n)
    spec = config.model("camelyon16", method)
    return spec.type, spec.params


def build_method(method: str, seed: int = 0):
    """The model of ``method``, randomly initialised, eval mode, and its parameters as a dict."""
    import torch

    from zoomin.models.registry import model_type

    kind, params = method_params(method)
    torch.manual_seed(seed)
    return model_type(kind).build(2, params).eval(), params.to_dict()


def fix_mmap_threshold(threshold: int = 128 * 1024) -> bool:
    """glibc ``mallopt(M_MMAP_THRESHOLD, 128 KiB)``: every larger block is mmapped and unmapped
    when freed, so the heap keeps none (zoomin.predict.host_memory says why zoomin does not do this)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    return bool(libc.mallopt(-3, threshold))  # -3: M_MMAP_THRESHOLD in glibc's malloc.h


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class ReadCounter:
    """Counts what an inference reads from a ``SlideImage``: view pixels from the cache per scale
    (``view_rows``), region views per (side, scale) (``region_array``), and, through ``read_stats``,
    pyramid pixels."""

    def __init__(self, image):
        self.image = image
        self.cache: Counter[float] = Counter()
        self.regions: Counter[tuple[int, float]] = Counter()
        rows, region = image.view_rows, image.region_array  # the batched models read uint8 regions

        def view_rows(scale, top, stop):
            band = rows(scale, top, stop)
            self.cache[float(scale)] += int(band.shape[1] * band.shape[2])
            return band

        def region_array(top, left, size, scale):
            self.regions[int(size), float(scale)] += 1
            return region(top, left, size, scale)

        image.view_rows, image.region_array = view_rows, region_array

    def pixels_by_scale(self) -> dict[str, int]:
        """Pixels read per scale ``1/d``, cache and pyramid together (the synthetic levels halve exactly)."""
        out: Counter[str] = Counter()
        for scale, pixels in self.cache.items():
            out[f"1/{round(1 / scale)}"] += pixels
        for level, pixels in self.image.read_stats.items():
            out[f"1/{2 ** int(level)}"] += int(pixels)
        return dict(sorted(out.items(), key=lambda item: int(item[0][2:])))


def phase_infer(slide: Path, cache: Path, method: str, seed: int, allocator: str, threads: int | None) -> dict:
    import torch

    from zoomin.data.slide_access import SlideImage
    from zoomin.measure import MB, measure_peak_memory, module_bytes

    if threads:
        torch.set_num_threads(threads)
    if allocator == "fixed-threshold":
        fix_mmap_threshold()
    model, params = build_method(method)
    rss_imports, peak_imports = current_rss_mb(), slide_bench.peak_rss_mb()
    image = SlideImage(slide, cache)
    counter = ReadCounter(image)
    height, width = image.size

    def infer():
        with torch.inference_mode():
            return model([image], generator=torch.Generator().manual_seed(seed), sampling="sample")

    started, cpu = time.perf_counter(), cpu_seconds()
    output = infer()
    cold, cold_cpu = time.perf_counter() - started, cpu_seconds() - cpu
    level0 = image.read_stats[0]
    by_level = {int(k): int(v) for k, v in sorted(image.read_stats.items())}
    by_scale = counter.pixels_by_scale()
    cache_pixels = {f"1/{round(1 / k)}": v for k, v in sorted(counter.cache.items())}
    region_views = {f"{size}@1/{round(1 / scale)}": count for (size, scale), count in sorted(counter.regions.items())}
    attention = output.attention[0]
    opened, sampled = len(attention.stage2), len(attention.sampled.centres)
    draws = int(attention.counts.sum())
    del output, attention
    peak_after = slide_bench.peak_rss_mb()
    started, cpu = time.perf_counter(), cpu_seconds()
    infer()
    warm, warm_cpu = time.perf_counter() - started, cpu_seconds() - cpu

    parameters = module_bytes(model) / MB
    streamed = measure_peak_memory(infer, "cpu")
    chunk = model.chunk_pixels
    model.chunk_pixels = 1 << 62  # one chunk: every net over all of its inputs at once
    started = time.perf_counter()
    infer()
    whole_s = time.perf_counter() - started
    whole = measure_peak_memory(infer, "cpu")
    model.chunk_pixels = chunk
    image.close()
    return {
        "method": method,
        "params": params,
        "slide": [height, width],
        "allocator": allocator,
        "threads": torch.get_num_threads(),
        "load_average": os.getloadavg()[0],
        "chunk_pixels": chunk,
        "wall_s": cold,
        "cpu_s": cold_cpu,
        "second_wall_s": warm,
        "second_cpu_s": warm_cpu,
        "draws": draws,
        "opened_stage1_cells": opened,
        "region_views": region_views,
        "sampled_subtiles": sampled,
        "rss_after_imports_mb": rss_imports,
        "peak_rss_after_imports_mb": peak_imports,
        "peak_rss_mb": peak_after,
        "rss_above_imports_mb": peak_after - rss_imports,
        "level0_pixels_read": level0,
        "level0_fraction": level0 / float(height * width),
        "pixels_read_by_level": by_level,
        "cache_pixels_read": cache_pixels,
        "pixels_read_by_scale": by_scale,
        "pixels_read_total": sum(by_scale.values()),
        "parameters_mb": parameters,
        "forward_peak_mb": streamed.forward_peak_mb,
        "tensor_peak_mb": parameters + streamed.forward_peak_mb,
        "largest_allocation_mb": streamed.largest_allocation_mb,
        "unchunked_wall_s": whole_s,
        "unchunked_tensor_peak_mb": parameters + whole.forward_peak_mb,
        "unchunked_largest_allocation_mb": whole.largest_allocation_mb,
    }


def _child(args: list[str]) -> dict:
    result = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"child {args} failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure_size(
    size: int, methods: list[str], workdir: Path, seed: int, keep: bool, threads: int | None, allocators: list[str]
) -> dict:
    slide = workdir / f"palette_{size}.tif"
    report: dict = {"size": size}
    needed = BYTES_PER_PIXEL * size * size * 1.5
    free = shutil.disk_usage(workdir).free
    if not slide.exists() and free < needed:
        report["skipped"] = f"{free / 1e9:.1f} GB free in {workdir}, the slide needs about {needed / 1e9:.1f} GB"
        return report
    caches = []
    try:
        if not slide.exists():
            report["write"] = write_palette_slide(slide, size)
        common = ["--workdir", str(workdir), "--size", str(size)] + (["--threads", str(threads)] if threads else [])
        for method in methods:
            _, params = method_params(method)
            scale, tile = params.view_scales()[0], params.tile_size()
            cache = workdir / f"palette_{size}_s{scale:g}.h5"
            caches.append(cache)
            if not cache.exists():
                build = ["--phase", "build", "--scale", str(scale), "--tile", str(tile), "--cache", str(cache)]
                report[f"build_{method}"] = _child([*common, *build])
            for allocator in allocators:
                infer = ["--phase", "infer", "--method", method, "--seed", str(seed), "--allocator", allocator]
                report[f"infer_{method}_{allocator}"] = _child([*common, *infer, "--cache", str(cache)])
    finally:
        if not keep:
            slide.unlink(missing_ok=True)
            for cache in caches:
                cache.unlink(missing_ok=True)
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 200_000])
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/zoomin-giga"))
    parser.add_argument("--seed", type=int, default=0, help="seed of the draws")
    parser.add_argument("--keep", action="store_true", help="keep the synthetic slides and caches")
    parser.add_argument("--threads", type=int, help="torch threads of the inference (default: torch's)")
    parser.add_argument("--out", type=Path, help="also write the JSON report here")
    parser.add_argument("--phase", choices=["all", "build", "infer"], default="all", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--scale", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--tile", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--method", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--allocators", nargs="+", choices=ALLOCATORS, default=["default"], help="malloc settings")
    parser.add_argument("--allocator", choices=ALLOCATORS, default="default", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.phase != "all":
        slide = args.workdir / f"palette_{args.size}.tif"
        if args.phase == "build":
            print(json.dumps(slide_bench.phase_build(slide, args.cache, [args.scale], args.tile)))
        else:
            print(json.dumps(phase_infer(slide, args.cache, args.method, args.seed, args.allocator, args.threads)))
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    import torch

    machine = f"{platform.machine()} {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}"
    report = {
        "machine": machine,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "targets": TARGETS,
        "sizes": [
            measure_size(size, args.methods, args.workdir, args.seed, args.keep, args.threads, args.allocators)
            for size in args.sizes
        ],
    }
    text = json.dumps(report, indent=2)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
