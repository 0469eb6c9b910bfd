"""Driving the figures: gather what each needs (runs, models, images, masks), then draw it.

* :func:`attention_figure` -- a test image's attention and sampled sub-tiles (paper Fig. 3/6);
* :func:`memory_figure` -- tiles and input memory per image in training, memory vs side (Fig. 4);
* :func:`errorbars_figure` -- accuracy per run of a dataset's methods (Fig. 5);
* :func:`spearman_figure` -- attention against the annotation, Spearman's rho (Fig. 7);
* :func:`views_figure` -- the views a model sees of an image where the object vanishes (Fig. 8);
* :func:`pareto_figure` -- accuracy against peak inference memory per configuration;
* :func:`budget_figure` -- validation accuracy against cumulative training compute per method.

The drawing is in :mod:`zoomin.report.draw`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from zoomin.config.run import RunSpec
from zoomin.report.figure_data import budget_curves, pareto_points, run_accuracies, training_history, write_csv

# torch and the trained models are imported by the figures that run a model (attention, Fig. 7 and
# 8) when they are drawn: the other figures' jobs then start without torch (tests/test_import_cost.py).

DISPLAY_LIMIT = 2048  # longest side of the full-resolution panel of Fig. 8 (larger images are shown smaller)


def attention_figure(spec: RunSpec, views: Path, model_path: Path, out_png: Path) -> None:
    """The first test image not of the reference class, its attention and sampled sub-tiles."""
    import torch

    from zoomin.config.runs import Stream
    from zoomin.data.splits import load_run_data
    from zoomin.report.draw import plot_attention
    from zoomin.training.checkpoints import load_trained_model
    from zoomin.training.inference import stream_generator

    device = torch.device("cpu")
    data = load_run_data(views, spec.run, spec.n_folds)
    model, meta = load_trained_model(model_path, device)
    reference = data.class_index(spec.reference_class)
    chosen = next((i for i in range(len(data.test)) if data.test.label(i) != reference), 0)
    image = data.test.image(chosen)
    with torch.no_grad():
        out = model([image], generator=stream_generator(spec.seed, Stream.FIGURES), sampling="sample")
    predicted = meta["classes"][int(out.logits.argmax(1))]
    truth = meta["classes"][data.test.label(chosen)]
    title = f"{spec.dataset}: {data.test.image_id(chosen)} (label {truth}, predicted {predicted})"
    attention = out.attention[0].detached() if out.attention else None
    plot_attention(image, attention, out_png, title)


def memory_figure(
    runs: Sequence[tuple[str, str, str]],
    histories: Sequence[str | Path],
    methods: Mapping[str, Mapping[str, Any]],
    scaling_csv: str | Path,
    out_png: Path,
    tiles_in_image: float | None = None,
    title: str = "",
) -> None:
    """Figure 4 from the training histories of ``runs`` and the memory-vs-side measurement."""
    from zoomin.report.draw import plot_memory

    history = training_history(runs, histories, methods)
    plot_memory(history, pd.read_csv(scaling_csv), out_png, tiles_in_image, title)


def tiles_in_image(views: Path, tile: int) -> float:
    """Mean number of ``tile``-sided tiles in the images of a view cache (Zoom-In's grid)."""
    from zoomin.data.view_cache import ViewCache

    with ViewCache(views) as cache:
        heights, widths = cache.index.heights, cache.index.widths
        return float(np.mean([math.ceil(h / tile) * math.ceil(w / tile) for h, w in zip(heights, widths)]))


def errorbars_figure(
    runs: Sequence[tuple[str, str, str]],
    metrics: Sequence[str | Path],
    methods: Mapping[str, Mapping[str, Any]],
    block: str,
    paper_csv: str | Path | None,
    out_png: Path,
) -> None:
    """Figure 5: accuracy per run of each method, mean ± std, the paper's beside it."""
    from zoomin.report.draw import plot_errorbars

    frame = run_accuracies(runs, metrics, methods)
    paper = None
    if paper_csv:
        paper = pd.read_csv(paper_csv)
        paper = paper[paper.block == block].merge(
            frame[["method", "label"]].drop_duplicates(), on="method", how="inner"
        )
    plot_errorbars(frame, paper, out_png, f"{block}: test accuracy over {frame.run.nunique()} runs")


def spearman_figure(
    specs: Sequence[RunSpec], models: Sequence[str | Path], views: Path, out_png: Path, out_csv: Path, out_tiles: Path
) -> pd.DataFrame:
    """Figure 7: the tiles of every annotated test image of every run, Spearman's rho; writes the
    per-tile CSV, the summary CSV (rho) and the figure. Returns the summary."""
    from zoomin.report.agreement import attention_vs_annotation, spearman_summary
    from zoomin.report.draw import plot_spearman

    tiles = attention_vs_annotation([(spec, Path(m)) for spec, m in zip(specs, models)], views)
    summary = spearman_summary(tiles)
    write_csv(tiles, out_tiles)
    write_csv(summary, out_csv)
    spec = specs[0]
    plot_spearman(tiles, summary, out_png, f"{spec.dataset}: {spec.method}, stage-1 attention vs annotation")
    return summary


def views_figure(spec: RunSpec, views: Path, model_path: Path, out_png: Path) -> None:
    """Figure 8: the first test image not of the reference class, at full resolution and in the
    stage-1 view of the model, its annotated object boxed (when the dataset has masks), and the
    model's stage-1 attention."""
    import torch

    from zoomin.config.runs import Stream
    from zoomin.data.splits import load_run_data
    from zoomin.report.draw import plot_views
    from zoomin.training.checkpoints import load_trained_model
    from zoomin.training.inference import stream_generator

    data = load_run_data(views, spec.run, spec.n_folds)
    reference = data.class_index(spec.reference_class)
    chosen = next((i for i in range(len(data.test)) if data.test.label(i) != reference), 0)
    image = data.test.image(chosen)
    height, width = image.size
    shown = min(1.0, DISPLAY_LIMIT / max(height, width))
    full = image.view(shown).permute(1, 2, 0).numpy()
    scale = min(spec.model.params.view_scales(), default=shown)
    view = image.view(scale).permute(1, 2, 0).numpy()
    box = _object_box(data.test.cache, data.test.image_id(chosen), image.size, shown)
    model, meta = load_trained_model(model_path, torch.device("cpu"))
    with torch.no_grad():
        out = model([image], generator=stream_generator(spec.seed, Stream.FIGURES), sampling="sample")
    attention = None
    if out.attention:
        amap = out.attention[0].stage1.detached()
        top, left, map_h, map_w = amap.bounds()
        attention = (amap.probs.numpy(), (top * shown, left * shown, map_h * shown, map_w * shown))
    predicted = meta["classes"][int(out.logits.argmax(1))]
    truth = meta["classes"][data.test.label(chosen)]
    title = f"{spec.dataset}: {data.test.image_id(chosen)} (label {truth}, predicted {predicted} by {spec.method})"
    plot_views(full, view, scale, box, attention, out_png, title)


def _object_box(cache: Any, image_id: str, size: tuple[int, int], shown: float) -> tuple[int, int, int, int] | None:
    """Bounding box ``(top, left, height, width)`` of the image's mask, in pixels at ``shown``."""
    if not cache.has_masks:
        return None
    scale = max(cache.scales)
    mask = cache.mask_view(image_id, scale)
    if mask is None or not mask.any():
        return None
    rows, cols = np.nonzero(mask)
    factor_y, factor_x = size[0] * shown / mask.shape[0], size[1] * shown / mask.shape[1]
    top, left = int(rows.min() * factor_y), int(cols.min() * factor_x)
    return top, left, int((rows.max() + 1) * factor_y) - top, int((cols.max() + 1) * factor_x) - left


def pareto_figure(
    runs: Sequence[tuple[str, str, str]],
    metrics: Sequence[str | Path],
    methods: Mapping[str, Mapping[str, Any]],
    params: Mapping[str, Mapping[str, Any]],
    block: str,
    out_png: Path,
    out_csv: Path,
) -> pd.DataFrame:
    """Accuracy against peak inference memory per configuration (the methods' model ``params``) and
    each model type's front."""
    from zoomin.report.draw import plot_pareto

    points = pareto_points(run_accuracies(runs, metrics, methods), params)
    write_csv(points, out_csv)
    plot_pareto(points, out_png, f"{block}: accuracy against peak inference memory")
    return points


def budget_figure(
    runs: Sequence[tuple[str, str, str]],
    histories: Sequence[str | Path],
    methods: Mapping[str, Mapping[str, Any]],
    block: str,
    out_png: Path,
) -> None:
    """Validation and training accuracy of every run against its cumulative training compute."""
    from zoomin.report.draw import plot_budget

    labels = list(dict.fromkeys(methods[method]["label"] for _, method, _ in runs))
    curves = budget_curves(training_history(runs, histories, methods))
    plot_budget(curves, labels, out_png, f"{block}: accuracy against training compute")
