"""Zoom-In's ``tissue_only``: no stage-1 attention, and no draws, on tiles that hold no tissue."""

from __future__ import annotations

import numpy as np
import torch

from zoomin.image_access import InMemoryImage
from zoomin.models import build_model

PARAMS = {"tile": 16, "subtile": 5, "s1": 0.25, "s2": 0.5, "n": 12}


class TissueImage(InMemoryImage):
    """An image that knows which tiles of its grid hold tissue, as a slide does (``SlideImage.tile_mask``)."""

    def __init__(self, pixels: np.ndarray, tissue: np.ndarray):
        super().__init__(pixels)
        self.tissue = torch.as_tensor(tissue, dtype=torch.bool)
        self.asked: list[int] = []

    def tile_mask(self, tile_size: int) -> torch.Tensor:
        self.asked.append(tile_size)
        return self.tissue


def image() -> TissueImage:
    pixels = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    tissue = np.zeros((4, 4), dtype=bool)
    tissue[1:3, 2] = True  # tiles 6 and 10 of the 4x4 grid
    return TissueImage(pixels, tissue)


def test_tissue_only_draws_tissue_tiles_only():
    torch.manual_seed(0)
    model = build_model("zoomin", 2, **PARAMS, tissue_only=True)
    slide = image()
    for sampling in ("sample", "topk"):
        out = model([slide], generator=torch.Generator().manual_seed(1), sampling=sampling)
        attention = out.attention[0]
        probs = attention.stage1.probs.detach().reshape(-1)
        assert set(torch.nonzero(probs).reshape(-1).tolist()) == {6, 10}
        assert abs(float(probs.sum()) - 1.0) < 1e-6
        assert set(attention.sampled.cells.tolist()) <= {6, 10} and int(attention.counts.sum()) == PARAMS["n"]
        assert torch.isfinite(out.logits).all() and torch.isfinite(out.entropy).all()
    assert slide.asked and set(slide.asked) == {PARAMS["tile"]}
    out.logits.sum().backward()  # the masked logits leave the gradients finite
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_contrastive_draws_stay_on_the_tissue():
    torch.manual_seed(0)
    model = build_model("zoomin", 2, **PARAMS, tissue_only=True)
    slide = image()
    plans = []
    original = model._allocate

    def spy(a, sampling, generator, contrast, **support):
        plan = original(a, sampling, generator, contrast, **support)
        plans.append(plan)
        return plan

    model._allocate = spy
    model.contrastive_logits([slide], torch.Generator().manual_seed(2))
    q, counts = (batch[0] for batch in plans[-1])  # the batch's only image
    assert set(torch.nonzero(q.detach()).reshape(-1).tolist()) <= {6, 10}
    assert set(torch.nonzero(counts).reshape(-1).tolist()) <= {6, 10}


def test_without_the_option_or_without_a_tissue_mask_every_tile_counts():
    torch.manual_seed(0)
    everywhere = build_model("zoomin", 2, **PARAMS)
    assert bool((everywhere.attention_maps(image()).stage1.probs > 0).all())
    tissue_only = build_model("zoomin", 2, **PARAMS, tissue_only=True)
    plain = InMemoryImage(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    assert bool((tissue_only.attention_maps(plain).stage1.probs > 0).all())  # no tile_mask: all tiles
