"""Driving the attention figure: pick a test image of a class of interest, run the model, plot."""

from __future__ import annotations

from pathlib import Path

import torch

from zoomin.checkpoints import load_trained_model
from zoomin.data.splits import load_run_data
from zoomin.plots import plot_attention
from zoomin.spec import RunSpec


def attention_figure(spec: RunSpec, views: Path, model_path: Path, out_png: Path) -> None:
    """The first test image not of the reference class, its attention and sampled sub-tiles."""
    device = torch.device("cpu")
    data = load_run_data(views, spec.run, spec.n_folds)
    model, meta = load_trained_model(model_path, device)
    reference = data.class_index(spec.reference_class)
    chosen = next((i for i in range(len(data.test)) if data.test.label(i) != reference), 0)
    image = data.test.image(chosen)
    with torch.no_grad():
        out = model([image], generator=torch.Generator().manual_seed(spec.seed), sampling="sample")
    predicted = meta["classes"][int(out.logits.argmax(1))]
    truth = meta["classes"][data.test.label(chosen)]
    title = f"{spec.dataset}: {data.test.image_id(chosen)} (label {truth}, predicted {predicted})"
    attention = out.attention[0].detached() if out.attention else None
    plot_attention(image, attention, out_png, title)
