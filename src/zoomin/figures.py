"""Driving the attention figure: pick a test image of the class of interest, run the model, plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from zoomin.checkpoints import load_trained_model
from zoomin.data.splits import load_run_data
from zoomin.plots import plot_attention


def attention_figure(
    views: Path, model_path: Path, dataset_config: dict[str, Any], run: str, seed: int, out_png: Path, title: str
) -> None:
    device = torch.device("cpu")
    data = load_run_data(views, dataset_config, run)
    model, meta = load_trained_model(model_path, device)
    reference = data.class_index(dataset_config.get("reference_class"))
    chosen = next(
        (i for i in range(len(data.test)) if data.test.label(i) != reference),
        0,
    )
    image = data.test.image(chosen)
    with torch.no_grad():
        out = model([image], generator=torch.Generator().manual_seed(seed), sampling="sample")
    predicted = meta["classes"][int(out.logits.argmax(1))]
    truth = meta["classes"][data.test.label(chosen)]
    plot_attention(image, out.details[0], out_png, f"{title}: {data.test.image_id(chosen)} (label {truth}, predicted {predicted})")
