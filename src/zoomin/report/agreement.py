"""Does the attention agree with the annotation? Paper Figure 7, on any dataset with masks.

For every test image that has a non-empty mask, in every run of a model, the model's stage-1
attention (:attr:`zoomin.models.output.Attention.stage1`, Zoom-In's tile attention ``a``) is paired
cell by cell with the fraction of that cell covered by the annotated object
(:func:`cell_coverage`, from the mask in the view cache). :func:`spearman_summary` gives Spearman's
rank correlation (``scipy.stats.spearmanr``) over all those cells, and over the cells that contain
some of the object (the paper notes that attention seems to mark the presence of the object
rather than its proportion).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats

from zoomin.config.run import RunSpec
from zoomin.config.runs import Stream
from zoomin.data.splits import load_run_data
from zoomin.errors import UserError
from zoomin.models.output import AttentionMap
from zoomin.training.checkpoints import load_trained_model
from zoomin.training.inference import stream_generator

TILE_COLUMNS = ["dataset", "method", "run", "image_id", "row", "col", "attention", "coverage"]
SUMMARY_COLUMNS = ["dataset", "method", "cells", "tiles", "images", "runs", "spearman_rho", "p_value"]
SCOPES = {"all": "every tile of an annotated image", "object": "tiles that contain some of the object"}


def cell_coverage(amap: AttentionMap, mask: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """Fraction of each cell of ``amap`` (its part inside the image) covered by the object.

    ``mask``: ``(h, w)`` values in [0, 1] (object fraction per pixel) covering the whole image at
    any scale. Cells wholly outside the image (grid padding) are NaN."""
    height, width = image_size
    scale_y, scale_x = mask.shape[0] / height, mask.shape[1] / width
    rows, cols = amap.shape
    out = np.full((rows, cols), np.nan)
    for r in range(rows):
        top = amap.origin[0] + r * amap.cell[0]
        y0, y1 = round(max(top, 0.0) * scale_y), round(min(top + amap.cell[0], height) * scale_y)
        for c in range(cols):
            left = amap.origin[1] + c * amap.cell[1]
            x0, x1 = round(max(left, 0.0) * scale_x), round(min(left + amap.cell[1], width) * scale_x)
            if y1 > y0 and x1 > x0:
                out[r, c] = float(mask[y0:y1, x0:x1].mean())
    return out


def attention_vs_annotation(runs: Sequence[tuple[RunSpec, Path]], views: Path) -> pd.DataFrame:
    """One row per stage-1 cell of every annotated test image of every run (``(spec, model)``)."""
    rows = []
    device = torch.device("cpu")
    for spec, model_path in runs:
        data = load_run_data(views, spec.run, spec.n_folds)
        if not data.test.cache.has_masks:
            raise UserError(f"{views} has no masks: Figure 7 needs a dataset with pixel annotations")
        scale = max(data.test.cache.scales)
        model, _ = load_trained_model(model_path, device)
        model.eval()
        for i in range(len(data.test)):
            image_id = data.test.image_id(i)
            mask = data.test.cache.mask_view(image_id, scale)
            if mask is None or not mask.any():
                continue
            image = data.test.image(i)
            with torch.no_grad():
                out = model([image], generator=stream_generator(spec.seed, Stream.FIGURES), sampling="sample")
            if not out.attention:
                raise UserError(f"method {spec.method} has no attention to compare with the annotation")
            amap = out.attention[0].stage1.detached()
            coverage = cell_coverage(amap, mask.astype(np.float64) / 255.0, image.size)
            probs = amap.probs.numpy()
            for (r, c), value in np.ndenumerate(coverage):
                if not np.isnan(value):
                    rows.append((spec.dataset, spec.method, spec.run, image_id, r, c, float(probs[r, c]), value))
    return pd.DataFrame(rows, columns=TILE_COLUMNS)


def spearman_summary(tiles: pd.DataFrame) -> pd.DataFrame:
    """Spearman's rho of attention against coverage over every cell, and over cells with object."""
    rows = []
    for scope, cells in (("all", tiles), ("object", tiles[tiles.coverage > 0])):
        if len(cells) >= 2 and cells.attention.nunique() > 1 and cells.coverage.nunique() > 1:
            result = stats.spearmanr(cells.attention, cells.coverage)
            rho, p_value = float(result.statistic), float(result.pvalue)
        else:
            rho = p_value = float("nan")
        rows.append({
            "dataset": tiles.dataset.iloc[0] if len(tiles) else "",
            "method": tiles.method.iloc[0] if len(tiles) else "",
            "cells": scope,
            "tiles": len(cells),
            "images": cells[["run", "image_id"]].drop_duplicates().shape[0],
            "runs": cells.run.nunique(),
            "spearman_rho": rho,
            "p_value": p_value,
        })
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
