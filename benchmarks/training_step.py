"""Training-step time and peak training memory per (dataset, method) of a config, on one device;
with ``--steps``, images per second and the PyTorch op count of one training step per model type.

    python benchmarks/training_step.py [--device cpu|cuda] [--config config/config.yaml]
        [--epochs 2] [--n-images N] [--datasets colon fmow ...] [--mixed-precision] [--out CSV]
    python benchmarks/training_step.py --steps [--device cpu|cuda] [--models zoomin ats ...]
        [--batches 4 16 32 64] [--threads 1] [--min-seconds 2] [--out CSV]

``--steps`` (:mod:`zoomin.models` only, no dataset): every model type built with
``zoomin.models.registry.build_model(name, 2)`` (its default parameters: the colon settings for
Zoom-In and ATS) in train mode, on ``B`` random 500x500 ``InMemoryImage``s. A step is
``output = model(images, generator)`` and ``output.logits.sum().backward()`` (no optimiser).
After one warm-up step, ``ops`` is the sum of the event counts of ``torch.profiler.profile``
(CPU activities) around one step, and ``images_per_s`` is ``B`` times the steps run in at least
``--min-seconds`` (at least two) over their time. A model that fails at a batch size gets its
error in ``error``.

For each dataset of the config (default: the embedded default) the stand-in is constructed and its
view cache built under ``benchmarks/out/training_step/<dataset>/`` (kept between calls), then each
of the dataset's methods is trained for ``--epochs`` epochs of its first run with the workflow's own
``zoomin.training.loop.train`` and evaluated with ``zoomin.training.evaluate.evaluate``, exactly as the
workflow's ``train`` rule does (it trains, then evaluates). Accuracy after so few epochs means
nothing and is not reported.

Columns of the CSV (and of the Markdown table written next to it):

* ``epoch_s``: the mean epoch time (training steps and the validation pass) over the epochs after
  the first, which pays for cuDNN autotuning and lazy initialisation (``first_epoch_s``; with
  ``--epochs 1`` it is that epoch); ``ms_per_step`` is it divided by the optimiser steps per epoch;
* ``train_peak_mb``: on CUDA, ``torch.cuda.max_memory_allocated`` over the whole training call
  (model, Adam state, activations of a batch, the validation pass); empty on the CPU;
* ``infer_peak_mb``, ``infer_time_ms``, ``gflops``: the evaluation's per-image measurement
  (``zoomin.measure``; batch 1).
"""

from __future__ import annotations

import argparse
import logging
import math
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from zoomin.config.experiment import Experiment
from zoomin.config.load import load
from zoomin.config.run import RunSettings
from zoomin.data.sources import construct_dataset
from zoomin.data.splits import load_run_data
from zoomin.data.view_cache import build_view_cache
from zoomin.image_access import InMemoryImage
from zoomin.models.registry import MODEL_TYPES, build_model
from zoomin.training.evaluate import evaluate
from zoomin.training.loop import RunOutputs, train

LOG = logging.getLogger("benchmarks.training_step")
REPO = Path(__file__).resolve().parents[1]


def prepare_views(experiment: Experiment, dataset: str, work: Path, n_images: int | None) -> Path:
    """Construct the dataset and cache its views once; later calls reuse them."""
    ds = experiment.datasets[dataset]
    params = dict(ds.construct)
    if n_images is not None:
        params["n_images"] = n_images
    views = work / dataset / f"views_{params.get('n_images', 'all')}.h5"
    if views.exists():
        return views
    constructed = work / dataset / f"constructed_{params.get('n_images', 'all')}"
    shutil.rmtree(constructed, ignore_errors=True)
    construct_dataset(ds.source, None, constructed, name=dataset, params=params)
    build_view_cache(constructed, experiment.cache_scales(dataset, slides=False), views, progress=False)
    return views


def measure_method(
    experiment: Experiment, dataset: str, method: str, views: Path, n_train: int, work: Path, args
) -> dict:
    base = experiment.run(dataset, method, experiment.datasets[dataset].runs[0])
    spec = replace(
        base,
        training=base.training.replace(epochs=args.epochs),
        settings=RunSettings(device=args.device, mixed_precision=args.mixed_precision),
    )
    out = work / dataset / method / args.device
    shutil.rmtree(out, ignore_errors=True)  # no checkpoint to resume from: every call trains anew
    outputs = RunOutputs(out / "checkpoint", out / "model.pt", out / "history.csv")
    if args.device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    train(spec, views, outputs)
    train_peak = torch.cuda.max_memory_allocated() / 2**20 if args.device == "cuda" else math.nan
    history = pd.read_csv(outputs.history)
    steady = history["seconds"].iloc[1:] if len(history) > 1 else history["seconds"]
    steps = math.ceil(n_train / spec.training.batch_size)
    metrics = evaluate(spec, views, outputs.model, out / "metrics.json")
    return {
        "dataset": dataset,
        "method": method,
        "device": metrics["device_name"],
        "epochs": args.epochs,
        "steps_per_epoch": steps,
        "epoch_s": float(steady.mean()),
        "ms_per_step": 1000 * float(steady.mean()) / steps,
        "first_epoch_s": float(history["seconds"].iloc[0]),
        "train_peak_mb": train_peak,
        "infer_peak_mb": metrics["peak_memory_mb"],
        "infer_time_ms": metrics["time_ms"],
        "gflops": metrics["gflops"],
        "mixed_precision": args.mixed_precision,
    }


def random_images(batch: int, side: int = 500, seed: int = 0) -> list[InMemoryImage]:
    rng = np.random.default_rng(seed)
    return [InMemoryImage(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)) for _ in range(batch)]


def training_step(model: torch.nn.Module, images: list[InMemoryImage], generator: torch.Generator) -> None:
    """What ``--steps`` times and counts: the forward pass and the backward pass of ``logits.sum()``."""
    model.zero_grad(set_to_none=True)
    output = model(images, generator)
    output.logits.sum().backward()


def count_ops(model: torch.nn.Module, images: list[InMemoryImage], generator: torch.Generator) -> int:
    """The sum of the event counts of ``torch.profiler`` (CPU activities) over one training step."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        training_step(model, images, generator)
    return sum(event.count for event in prof.key_averages())


def measure_step(name: str, batch: int, device: str, min_seconds: float) -> dict:
    torch.manual_seed(0)
    model = build_model(name, 2).to(device).train()
    images = random_images(batch)
    generator = torch.Generator().manual_seed(0)
    training_step(model, images, generator)  # warm-up: lazy initialisation, the images' cached views
    ops = count_ops(model, images, generator)
    steps, started = 0, time.perf_counter()
    while steps < 2 or time.perf_counter() - started < min_seconds:
        training_step(model, images, generator)
        if device == "cuda":
            torch.cuda.synchronize()
        steps += 1
    seconds = time.perf_counter() - started
    return {"model": name, "batch": batch, "ops": ops, "images_per_s": batch * steps / seconds,
            "ms_per_step": 1000 * seconds / steps, "steps_timed": steps}


def step_benchmark(args) -> int:
    torch.set_num_threads(args.threads)
    rows = []
    started = time.perf_counter()
    for name in args.models or list(MODEL_TYPES):
        for batch in args.batches:
            LOG.info("%s at batch %d on %s", name, batch, args.device)
            try:
                rows.append(measure_step(name, batch, args.device, args.min_seconds))
            except Exception as error:  # noqa: BLE001 - a model that cannot run here is reported, not fatal
                rows.append({"model": name, "batch": batch, "error": f"{type(error).__name__}: {error}"[:200]})
    table = pd.DataFrame(rows)
    out = args.out or args.work / f"steps_{args.device}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    markdown = table.to_markdown(index=False, floatfmt=".4g")
    out.with_suffix(".md").write_text(
        f"Command: `python {' '.join(sys.argv)}`; torch {torch.__version__}, {args.threads} thread(s); "
        f"{time.perf_counter() - started:.0f} s in all.\n\n{markdown}\n"
    )
    print(markdown)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "config" / "config.yaml")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--n-images", type=int, default=None, help="override each stand-in's n_images")
    parser.add_argument("--datasets", nargs="*", default=None)
    parser.add_argument("--methods", nargs="*", default=None, help="only these of each dataset's methods")
    parser.add_argument("--mixed-precision", action="store_true", help="autocast (CUDA only)")
    parser.add_argument("--work", type=Path, default=REPO / "benchmarks" / "out" / "training_step")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--steps", action="store_true", help="images/s and op count per step of each model type")
    parser.add_argument("--models", nargs="*", default=None, help="--steps: these model types (default: all)")
    parser.add_argument("--batches", nargs="*", type=int, default=[4, 16, 32, 64], help="--steps: batch sizes")
    parser.add_argument("--threads", type=int, default=1, help="--steps: torch threads")
    parser.add_argument("--min-seconds", type=float, default=2.0, help="--steps: timed seconds per measurement")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    LOG.setLevel(logging.INFO)
    if args.steps:
        return step_benchmark(args)

    experiment = load(args.config)
    datasets = args.datasets or [d for d, ds in experiment.datasets.items() if ds.source == "synthetic"]
    out = args.out or args.work / f"training_step_{args.device}.csv"
    rows = []
    started = time.perf_counter()
    for dataset in datasets:
        views = prepare_views(experiment, dataset, args.work, args.n_images)
        ds = experiment.datasets[dataset]
        n_train = len(load_run_data(views, ds.runs[0], ds.n_folds).train)
        for method in [m for m in ds.methods if args.methods is None or m in args.methods]:
            LOG.info("%s / %s on %s", dataset, method, args.device)
            rows.append(measure_method(experiment, dataset, method, views, n_train, args.work, args))
    table = pd.DataFrame(rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    markdown = table.to_markdown(index=False, floatfmt=".4g")
    out.with_suffix(".md").write_text(
        f"Command: `python {' '.join(sys.argv)}`; torch {torch.__version__}; "
        f"{time.perf_counter() - started:.0f} s in all.\n\n{markdown}\n"
    )
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
