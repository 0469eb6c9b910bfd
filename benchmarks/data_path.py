"""Benchmark: how long a model waits for its pixels (benchmarks/README.md, "Data path").

Not a test. Two commands:

``slides``
    ``SlideImage.patches`` on a synthetic JPEG pyramid (``benchmarks/slide_cache.py``'s
    ``write_slide``, 256 px tiles) with 1, 2, 4 and 8 reader threads (``read_workers``): for each
    (patches per call, patch side) of ``--calls``, ``--repeats`` calls, each on a fresh
    ``SlideImage`` (so OpenSlide's tile cache starts empty, as for a new image in training) at new
    random centres, the thread counts taking turns within each repeat (a change of the machine's
    load hits them alike). Prints the median milliseconds per call, the speed-up over one thread,
    and checks that every thread count returns the same tensor.

``images VIEWS --method M --run R``
    On a built image dataset (a workflow's ``results/<dataset>/views.h5`` and the config that made
    it), what a training prefetch could hide: per training image the milliseconds to decode the
    full-resolution file (done once per run, on first use) and to read the model's low-resolution
    views from the HDF5 cache (every epoch), against the seconds of the first two training epochs
    (:func:`zoomin.training.loop.train_epoch`, one torch thread) of that method.

Usage::

    python benchmarks/data_path.py slides [--side 16384] [--calls 64x32 100x256] [--repeats 7] [--workdir DIR]
    python benchmarks/data_path.py images results/colon/views.h5 --config config/config.yaml --method zoomin_lenet \
        --run r0f0
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import slide_cache as slide_bench  # noqa: E402  (benchmarks/slide_cache.py: write_slide)

WORKERS = (1, 2, 4, 8)


def parallel_capacity(threads: int = 2) -> float:
    """How many times faster ``threads`` threads hash than one (hashlib releases the GIL): about
    ``threads`` on idle cores, about 1 when other processes hold them. Thread speed-ups above are
    bounded by it; on a shared machine it says what the machine could give at that moment."""
    import hashlib
    from concurrent.futures import ThreadPoolExecutor

    data = os.urandom(16 << 20)

    def hashed(workers: int) -> float:
        started = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda _: hashlib.sha256(data).digest(), range(4 * threads)))
        return time.perf_counter() - started

    return statistics.median(hashed(1) / hashed(threads) for _ in range(3))


def bench_slides(side: int, calls: list[tuple[int, int]], repeats: int, workdir: Path) -> list[dict]:
    import torch

    from zoomin.data.slide_access import SlideImage

    slide = workdir / f"slide_{side}.tif"
    if not slide.exists():
        print(f"writing a {side} x {side} px JPEG pyramid to {slide} ...", flush=True)
        slide_bench.write_slide(slide, side)
    rows = []
    rng = np.random.default_rng(0)
    for count, size in calls:
        times: dict[int, list[float]] = {workers: [] for workers in WORKERS}
        for _ in range(repeats):
            centres = torch.from_numpy(rng.uniform(0, side, (count, 2)))
            reference = None
            for workers in WORKERS:
                with SlideImage(slide, read_workers=workers) as image:
                    _ = image.size  # open the handle outside the timed call
                    started = time.perf_counter()
                    patches = image.patches(centres, size)
                    times[workers].append(time.perf_counter() - started)
                if reference is None:
                    reference = patches
                elif not torch.equal(patches, reference):
                    raise AssertionError(f"{workers} threads read other pixels than 1 thread")
        serial = statistics.median(times[1])
        for workers in WORKERS:
            median = statistics.median(times[workers])
            rows.append({"patches": count, "side": size, "workers": workers, "median_ms": 1e3 * median,
                         "speedup": serial / median})
    return rows


def bench_images(views: Path, config: Path, method: str, run: str) -> dict:
    import torch
    import yaml

    import zoomin.config.load
    from zoomin.data.splits import load_run_data
    from zoomin.training.loop import setup, train_epoch

    torch.set_num_threads(1)
    experiment = zoomin.config.load.prepare(yaml.safe_load(config.read_text()))
    spec = experiment.run(views.parent.name, method, run)  # results/<dataset>/views.h5
    spec = dataclasses.replace(spec, training=dataclasses.replace(spec.training, epochs=1))  # no validation pass
    subset = load_run_data(views, spec.run, spec.n_folds).train  # images of their own: decoded here only
    scales = spec.model.params.view_scales()
    started = time.perf_counter()
    for i in range(len(subset)):
        subset.image(i).region_view(0, 0, 1, 1.0)  # the first full-resolution read decodes the file
    decode = (time.perf_counter() - started) / len(subset)
    started = time.perf_counter()
    for i in range(len(subset)):
        for scale in scales:
            subset.image(i).view(scale)
    view = (time.perf_counter() - started) / len(subset)
    trainer = setup(spec, views)
    epochs = []
    state: dict = {"history": []}
    for epoch in (1, 2):
        started = time.perf_counter()
        state["history"].append(train_epoch(trainer, epoch, state))
        epochs.append(time.perf_counter() - started)
    return {"images": len(subset), "view_scales": scales, "decode_ms": 1e3 * decode, "views_ms": 1e3 * view,
            "epoch1_s": epochs[0], "epoch2_s": epochs[1]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    slides = commands.add_parser("slides", help="SlideImage.patches with 1-8 reader threads")
    slides.add_argument("--side", type=int, default=16384)
    slides.add_argument("--calls", nargs="+", default=["64x32", "100x256"], help="PATCHESxSIDE per call")
    slides.add_argument("--repeats", type=int, default=7)
    slides.add_argument("--workdir", type=Path, default=Path("benchmarks/out/data_path"))
    images = commands.add_parser("images", help="decode and view reads against training epochs")
    images.add_argument("views", type=Path)
    images.add_argument("--config", type=Path, default=Path("config/config.yaml"))
    images.add_argument("--method", required=True)
    images.add_argument("--run", required=True)
    args = parser.parse_args(argv)

    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
    if args.command == "slides":
        args.workdir.mkdir(parents=True, exist_ok=True)
        calls = [tuple(int(n) for n in call.split("x")) for call in args.calls]
        before = parallel_capacity()
        rows = bench_slides(args.side, calls, args.repeats, args.workdir)
        print(f"2 threads hashed {before:.2f}x / {parallel_capacity():.2f}x as fast as 1, before / after the reads")
        print("| patches x side | reader threads | median ms per call | speed-up |")
        print("|---|---:|---:|---:|")
        for row in rows:
            print(f"| {row['patches']} x {row['side']} | {row['workers']} | {row['median_ms']:.1f} | "
                  f"{row['speedup']:.2f} |")
    else:
        result = bench_images(args.views, args.config, args.method, args.run)
        print(result)
        n = result["images"]
        print(f"per epoch: decoding {n} images {n * result['decode_ms'] / 1e3:.2f} s (first epoch only), "
              f"their views {n * result['views_ms'] / 1e3:.2f} s; epoch 1 {result['epoch1_s']:.2f} s, "
              f"epoch 2 {result['epoch2_s']:.2f} s")
    print(f"load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
