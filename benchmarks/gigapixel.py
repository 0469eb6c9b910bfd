"""Benchmark: one Zoom-In inference on synthetic gigapixel slides (16,000², 50,000², 100,000²).

Not a test. For each side: the synthetic pyramidal slide of ``benchmarks/slide_cache.py`` (written
tile by tile by its ``write_slide``: level 0 is never in memory), then two phases, each in a fresh
child process so that each peak RSS is its own:

1. ``build``: the slide's HDF5 view cache at the model's s1 (``slide_cache.phase_build``): wall
   time, peak RSS, RSS after the imports.
2. ``infer``: ``ZoomInNet`` at the Camelyon16 settings of ``config/paper.yaml`` (tile 4096,
   sub-tile 256, s1 1/64, s2 1/16, N 100, LeNet; random weights: the cost does not depend on them,
   only which tiles are drawn, and flat attention draws the most distinct tiles) on a
   ``SlideImage`` over that cache, called as ``zoomin predict`` and the evaluation call it: eval
   mode, no autograd, a CPU generator, glibc's malloc as it comes (``default``; with
   ``--allocators default fixed-threshold`` also in a second process whose malloc serves every
   block above 128 KiB by ``mmap``, see ``zoomin.predict.host_memory``). Reported: wall and CPU time of
   the first (cold) and of a second inference, and the load average (the machine may be shared);
   RSS after the imports and peak RSS after the inference (``VmRSS``/``VmHWM``); the level-0
   pixels read as a fraction of level 0; the peak tensor memory and its parts as the evaluation
   measures them (``zoomin.measure``: parameters + forward peak, dispatch tracker); then the same
   inference with the chunks switched off (``chunk_pixels`` so large that the stage-1 view, the
   stage-2 views and the N sub-tiles each go through their net at once) for its time and peak
   tensor memory: what the chunks cost and save.

Usage::

    python benchmarks/gigapixel.py [--sizes 16000 50000 100000] [--workdir /tmp/zoomin-giga] [--keep]
        [--threads N] [--allocators default fixed-threshold] [--out JSON]

Each slide is deleted once measured unless ``--keep`` (an existing one is reused). The JPEG slide
of 100,000² takes about 0.6 GB; the script checks the free space first and skips sizes that do not
fit. Prints one JSON report; ``--out`` also writes it to a file.
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import slide_cache as slide_bench  # noqa: E402  (benchmarks/slide_cache.py: write_slide, phase_build, peak_rss_mb)

REPO = Path(__file__).resolve().parents[1]
BYTES_PER_PIXEL = 0.06  # on-disk size of the synthetic JPEG pyramid per level-0 pixel (measured: 0.054)
ALLOCATORS = ("default", "fixed-threshold")  # glibc malloc as it comes, or with mallopt (fix_mmap_threshold)
TARGETS = {"wall_s": 5.0, "rss_above_imports_mb": 200.0, "level0_fraction": 0.01, "tensor_peak_mb": 71.76}


def current_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def camelyon16_model(seed: int = 0):
    """``zoomin_lenet`` of config/paper.yaml's camelyon16 dataset, randomly initialised, eval mode."""
    import torch

    from zoomin.config.load import load

    spec = load(REPO / "config" / "paper.yaml").model("camelyon16", "zoomin_lenet")
    torch.manual_seed(seed)
    return spec.build(2).eval(), spec.params.to_dict()


def fix_mmap_threshold(threshold: int = 128 * 1024) -> bool:
    """glibc ``mallopt(M_MMAP_THRESHOLD, 128 KiB)``: every larger block is mmapped and unmapped
    when freed, so the heap keeps none (zoomin.predict.host_memory says why zoomin does not do this)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    return bool(libc.mallopt(-3, threshold))  # -3: M_MMAP_THRESHOLD in glibc's malloc.h


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def phase_infer(slide: Path, cache: Path, seed: int, allocator: str, threads: int | None) -> dict:
    import torch

    from zoomin.data.slide_access import SlideImage
    from zoomin.measure import MB, measure_peak_memory, module_bytes

    if threads:
        torch.set_num_threads(threads)
    if allocator == "fixed-threshold":
        fix_mmap_threshold()
    model, params = camelyon16_model()
    rss_imports, peak_imports = current_rss_mb(), slide_bench.peak_rss_mb()
    image = SlideImage(slide, cache)
    height, width = image.size

    def infer():
        with torch.inference_mode():
            return model([image], generator=torch.Generator().manual_seed(seed), sampling="sample")

    started, cpu = time.perf_counter(), cpu_seconds()
    output = infer()
    cold, cold_cpu = time.perf_counter() - started, cpu_seconds() - cpu
    level0 = image.read_stats[0]
    by_level = {int(k): int(v) for k, v in sorted(image.read_stats.items())}
    del output
    peak_after = slide_bench.peak_rss_mb()
    started, cpu = time.perf_counter(), cpu_seconds()
    output = infer()
    warm, warm_cpu = time.perf_counter() - started, cpu_seconds() - cpu
    attention = output.attention[0]
    opened, sampled = len(attention.stage2), len(attention.sampled.centres)
    del output, attention

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
        "opened_tiles": opened,
        "sampled_subtiles": sampled,
        "rss_after_imports_mb": rss_imports,
        "peak_rss_after_imports_mb": peak_imports,
        "peak_rss_mb": peak_after,
        "rss_above_imports_mb": peak_after - rss_imports,
        "level0_pixels_read": level0,
        "level0_fraction": level0 / float(height * width),
        "pixels_read_by_level": by_level,
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
    size: int, workdir: Path, seed: int, keep: bool, threads: int | None, allocators: list[str]
) -> dict:
    slide = workdir / f"synthetic_{size}.tif"
    cache = workdir / f"synthetic_{size}.h5"
    report: dict = {"size": size}
    needed = BYTES_PER_PIXEL * size * size * 1.5
    free = shutil.disk_usage(workdir).free
    if not slide.exists() and free < needed:
        report["skipped"] = f"{free / 1e9:.1f} GB free in {workdir}, the slide needs about {needed / 1e9:.1f} GB"
        return report
    try:
        if not slide.exists():
            report["write"] = slide_bench.write_slide(slide, size)
        model_scale = str(1 / 64)
        common = ["--workdir", str(workdir), "--size", str(size)] + (["--threads", str(threads)] if threads else [])
        report["build"] = _child([*common, "--phase", "build", "--scale", model_scale])
        for allocator in allocators:
            report[f"infer_{allocator}"] = _child(
                [*common, "--phase", "infer", "--seed", str(seed), "--allocator", allocator]
            )
    finally:
        if not keep:
            slide.unlink(missing_ok=True)
            cache.unlink(missing_ok=True)
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[16_000, 50_000, 100_000])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/zoomin-giga"))
    parser.add_argument("--seed", type=int, default=0, help="seed of the draws")
    parser.add_argument("--keep", action="store_true", help="keep the synthetic slides and caches")
    parser.add_argument("--threads", type=int, help="torch threads of the inference (default: torch's)")
    parser.add_argument("--out", type=Path, help="also write the JSON report here")
    parser.add_argument("--phase", choices=["all", "build", "infer"], default="all", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--scale", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--allocators", nargs="+", choices=ALLOCATORS, default=["default"], help="malloc settings")
    parser.add_argument("--allocator", choices=ALLOCATORS, default="default", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.phase != "all":
        slide = args.workdir / f"synthetic_{args.size}.tif"
        cache = args.workdir / f"synthetic_{args.size}.h5"
        if args.phase == "build":
            print(json.dumps(slide_bench.phase_build(slide, cache, [args.scale], 4096)))
        else:
            print(json.dumps(phase_infer(slide, cache, args.seed, args.allocator, args.threads)))
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
            measure_size(size, args.workdir, args.seed, args.keep, args.threads, args.allocators) for size in args.sizes
        ],
    }
    text = json.dumps(report, indent=2)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
