"""MRMIL: stage 2 reads only the cells of the regions stage 1 attends to most, at most top x
(region/patch)^2 of them however large the image, only tissue is considered, both stages get
gradients (stage 1 from its own loss), it trains."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.models.test_mil import TissueImage, TissueSpy, noise_image
from tests.models.test_registry import SpyImage
from zoomin.errors import ConfigError
from zoomin.image_access import InMemoryImage
from zoomin.models import build_model
from zoomin.models.mrmil import region_cells
from zoomin.models.params import MRMILParams

pytestmark = pytest.mark.usefixtures("single_thread")

REGION, PATCH = 16, 8  # a region is 2 x 2 patches; read at 0.5 in stage 1 (8 px instances)


def small_mrmil(**overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    params = {"region": REGION, "low_scale": 0.5, "patch": PATCH, "top": 2, "width": 4, "hidden": 8, "chunk": 5}
    return build_model("mrmil", 2, **{**params, **overrides})


class CentreSpy(SpyImage):
    """A spy that tells which cells its ``patches`` requests (the stage-2 reads) were centred on."""

    def cells(self, patch: int, cols: int) -> list[int]:
        """Flat indices (into the grid of ``patch`` px cells, ``cols`` wide) of every patch read."""
        centres = torch.cat(self.centres)
        return ((centres[:, 0] // patch) * cols + centres[:, 1] // patch).long().tolist()


class TissueCentreSpy(TissueSpy, CentreSpy):
    """A centre spy that passes the tissue mask on."""


class TwoGridTissueImage(InMemoryImage):
    """An in-memory image that knows its tissue on each tile grid it is asked about (as a slide's
    ``tile_mask`` answers for any tile size), given here per tile size."""

    def __init__(self, pixels: np.ndarray, masks: dict[int, np.ndarray]):
        super().__init__(pixels)
        self.masks = {tile: torch.as_tensor(mask, dtype=torch.bool) for tile, mask in masks.items()}

    def tile_mask(self, tile_size: int, min_fraction: float = 0.0) -> torch.Tensor:
        return self.masks[tile_size]


def region_of(cell: int, cols: int, region_cols: int, per: int = REGION // PATCH) -> int:
    return (cell // cols) // per * region_cols + (cell % cols) // per


def test_stage2_reads_every_cell_of_the_top_regions_by_stage1_attention_and_nothing_else():
    model = small_mrmil(top=3)
    spy = CentreSpy(InMemoryImage(noise_image(1, 48, 64)))  # 3 x 4 regions, 6 x 8 patches
    out = model([spy])
    # stage 1 by hand: every region at 0.5, in grid order, through the stage-1 network at once
    regions = torch.stack([spy.image.region_view(r // 4 * REGION, r % 4 * REGION, REGION, 0.5) for r in range(12)])
    with torch.no_grad():
        low_logits, weights = model.low_head(model.low_encoder(regions))
    top = torch.topk(weights, 3).indices.tolist()
    assert set(top) != {0, 1, 2}  # the regions read first are not those chosen: the check below has power
    torch.testing.assert_close(out.extras[0], low_logits)
    torch.testing.assert_close(out.attention[0].stage1.probs.reshape(-1).float(), weights)
    assert out.attention[0].sampled.cells.tolist() == top and out.attention[0].sampled.size == REGION
    region_calls = [call for call in spy.calls if call[0] == "region_view"]
    assert len(region_calls) == 12 and {call[3:] for call in region_calls} == {(REGION, 0.5)}
    read = spy.cells(PATCH, 8)
    assert len(read) == len(set(read)) == 3 * 4  # each cell of the three regions, once
    assert {region_of(cell, 8, 4) for cell in read} == set(top)


def test_chunk_size_changes_nothing():
    image = InMemoryImage(noise_image(2, 48, 64))
    a = small_mrmil(chunk=1).eval()([image])
    b = small_mrmil(chunk=1000).eval()([image])
    torch.testing.assert_close(a.logits, b.logits)
    torch.testing.assert_close(a.extras, b.extras)


@pytest.mark.parametrize("side", [256, 512])
def test_stage2_reads_at_most_top_regions_of_cells_however_large_the_image(side):
    """64 px regions of 8 px patches: 64 cells each, so 3 x 64 = 192 instances at full resolution
    whether the image has 1,024 cells (256 px) or 4,096 (512 px)."""
    model = build_model("mrmil", 2, region=64, low_scale=0.125, patch=8, top=3, width=4, hidden=8, chunk=64)
    spy = CentreSpy(InMemoryImage(noise_image(3, side, side)))
    model([spy])
    sizes = [call[1] for call in spy.calls if call[0] == "patches"]
    assert sum(sizes) == 3 * (64 // 8) ** 2
    assert spy.largest <= 3 * 64 * 3 * 8 * 8  # nothing read is larger than the stage-2 patches
    assert len([call for call in spy.calls if call[0] == "region_view"]) == (side // 64) ** 2


def test_a_region_on_the_border_has_only_its_cells_inside_the_image():
    image = InMemoryImage(noise_image(4, 40, 50))  # 3 x 4 regions of 16 px; 5 x 7 cells of 8 px
    grid, cells = region_cells(image, torch.tensor([11]), 4, REGION, PATCH)  # the bottom-right region
    assert grid == (5, 7) and cells.tolist() == [4 * 7 + 6]  # one cell of its 2 x 2 is in the image


def test_only_tissue_regions_are_considered():
    tissue = np.zeros((3, 4), dtype=bool)
    tissue[0, 3] = tissue[1, 1] = tissue[2, 2] = True
    # region == patch: the same grid in both stages, so a TissueImage (one grid) knows both
    spy = TissueCentreSpy(TissueImage(noise_image(5, 48, 64), tissue))
    out = small_mrmil(patch=REGION, high_scale=1.0, top=2)([spy])
    corners = {call[1:3] for call in spy.calls if call[0] == "region_view"}
    assert corners == {(0, 48), (16, 16), (32, 32)}  # stage 1 reads the tissue regions only
    probs = out.attention[0].stage1.probs.reshape(-1)
    assert set(probs.nonzero()[:, 0].tolist()) <= {3, 5, 10}
    read = spy.cells(REGION, 4)
    assert len(read) == 2 and set(read) <= {3, 5, 10} and set(read) == set(out.attention[0].sampled.cells.tolist())


def test_stage2_reads_the_tissue_cells_of_a_region_or_all_of_them_where_none_has_tissue():
    regions = np.zeros((3, 4), dtype=bool)
    regions[0, 0] = regions[1, 2] = True
    cells = np.zeros((6, 8), dtype=bool)
    cells[0, 1] = cells[1, 1] = True  # region 0: two of its four cells; region 6 (row 1, col 2): none
    spy = TissueCentreSpy(TwoGridTissueImage(noise_image(6, 48, 64), {REGION: regions, PATCH: cells}))
    small_mrmil(top=2)([spy])
    region_6 = {2 * 8 + 4, 2 * 8 + 5, 3 * 8 + 4, 3 * 8 + 5}
    assert sorted(spy.cells(PATCH, 8)) == sorted({1, 9} | region_6)


def test_gradients_reach_both_stages_and_stage1_learns_from_its_own_loss_only():
    model = small_mrmil(stage1_weight=0.5)
    labels = torch.tensor([1, 0])
    out = model([InMemoryImage(noise_image(7, 48, 64)), InMemoryImage(noise_image(8, 32, 40))])
    auxiliary = model.auxiliary_loss(out, labels)
    torch.testing.assert_close(auxiliary, 0.5 * F.cross_entropy(torch.stack(out.extras), labels))
    F.cross_entropy(out.logits, labels).backward(retain_graph=True)
    stage1 = [*model.low_encoder.parameters(), *model.low_head.parameters()]
    stage2 = [*model.high_encoder.parameters(), *model.high_head.parameters()]
    assert all(p.grad is None for p in stage1)  # no gradient through the selection
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in stage2)
    auxiliary.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in stage1)


def checkered_bag(seed: int, positive: bool) -> InMemoryImage:
    """A 32 x 40 image of noise, or for a positive one a 1-pixel checkerboard with noise on top."""
    pixels = noise_image(seed)
    if positive:
        board = np.indices(pixels.shape[:2]).sum(axis=0) % 2 * 60 - 30
        pixels = (pixels.astype(int) + board[:, :, None]).astype(np.uint8)
    return InMemoryImage(pixels)


def accuracy_before_and_after_training(model: torch.nn.Module, steps: int = 20) -> tuple[float, float]:
    """Held-out accuracy on checkered bags before and after ``steps`` Adam steps on eight of them."""
    images = [checkered_bag(seed, positive=seed % 2 == 1) for seed in range(8)]
    labels = torch.tensor([seed % 2 for seed in range(8)])
    held_out = [checkered_bag(seed, positive=seed % 2 == 1) for seed in range(50, 58)]
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    with torch.no_grad():
        before = float((model(held_out).logits.argmax(1) == labels).float().mean())
    for _ in range(steps):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(model(images).logits, labels).backward()
        optimiser.step()
    with torch.no_grad():
        after = float((model(held_out).logits.argmax(1) == labels).float().mean())
    return before, after


def test_it_learns_bags_whose_instances_carry_the_bag_label():
    """The checkerboard of a positive bag vanishes at 0.5 (a 2 x 2 box of it is flat): only stage 2,
    at full resolution on the selected regions, can see it."""
    before, after = accuracy_before_and_after_training(small_mrmil())
    assert before <= 0.75 and after == 1.0


def test_the_region_scales_are_the_cached_ones():
    assert MRMILParams().region_scales() == (1 / 32,)
    assert MRMILParams(patch=512, high_scale=0.5).region_scales() == (1 / 32, 0.5)


@pytest.mark.parametrize(
    ("params", "key"),
    [({"region": 4}, "region"), ({"region": 64, "low_scale": 0.1}, "low_scale"),
     ({"region": 64, "low_scale": 0.25, "patch": 128}, "patch"), ({"region": 64, "low_scale": 0.25, "patch": 24}, "patch"),
     ({"patch": 16, "high_scale": 0.25}, "high_scale"),
     ({"region": 256, "low_scale": 0.5, "patch": 16, "high_scale": 0.5}, "high_scale"),
     ({"top": 0}, "top"), ({"hidden": 1}, "hidden"), ({"chunk": 0}, "chunk"), ({"stage1_weight": -1.0}, "stage1_weight")],
)
def test_bad_params_name_the_key(params, key):
    with pytest.raises(ConfigError) as error:
        build_model("mrmil", 2, **params)
    assert error.value.key == key
