"""Top-instance MIL: the bag is the tissue cells, the slide's logits are its top instance's, chunking
changes nothing, it reads full resolution only where there is tissue, and it learns bags in which
one instance carries the label -- which choosing the instance at random does not."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.models.test_registry import SpyImage
from tests.training.learning_problem import accuracy, one_instance_bags, train_steps
from zoomin.errors import ConfigError
from zoomin.image_access import InMemoryImage
from zoomin.models import build_model
from zoomin.models.tissue_bags import cell_centres, instance_grid

pytestmark = pytest.mark.usefixtures("single_thread")

PATCH = 8


def small_mil(**overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("mil", 2, **{"patch": PATCH, "width": 4, "chunk": 5, **overrides})


def noise_image(seed: int, height: int = 32, width: int = 40) -> np.ndarray:
    return np.random.default_rng(seed).integers(110, 140, (height, width, 3), dtype=np.uint8)


class TissueImage(InMemoryImage):
    """An in-memory image that knows its tissue, as a slide does (``tile_mask``)."""

    def __init__(self, pixels: np.ndarray, tissue: np.ndarray):
        super().__init__(pixels)
        self.tissue = torch.as_tensor(tissue, dtype=torch.bool)

    def tile_mask(self, tile_size: int, min_fraction: float = 0.0) -> torch.Tensor:
        assert self.tissue.shape == (-(-self.size[0] // tile_size), -(-self.size[1] // tile_size))
        return self.tissue


class TissueSpy(SpyImage):
    """A spy that passes the tissue mask on."""

    def tile_mask(self, tile_size: int, min_fraction: float = 0.0) -> torch.Tensor:
        return self.image.tile_mask(tile_size, min_fraction)


def test_the_slide_logits_are_the_top_instance_logits():
    model = small_mil().eval()
    image = InMemoryImage(noise_image(1))
    out = model([image])
    shape, cells = instance_grid(image, PATCH)
    assert shape == (4, 5) and len(cells) == 20
    every = model.net(image.patches(cell_centres(cells, shape[1], PATCH), PATCH))  # all instances at once
    top = int(torch.softmax(every, dim=1)[:, 1].argmax())
    torch.testing.assert_close(out.logits[0], every[top], rtol=1e-5, atol=1e-6)
    sampled = out.attention[0].sampled
    assert sampled.cells.tolist() == [top]
    assert sampled.centres.tolist() == [[(top // 5) * PATCH + PATCH / 2, (top % 5) * PATCH + PATCH / 2]]
    probs = out.attention[0].stage1.probs
    assert probs.shape == (4, 5) and int(probs.reshape(-1).argmax()) == top
    assert float(probs.sum()) == pytest.approx(1.0)


def test_chunk_size_changes_nothing():
    image = InMemoryImage(noise_image(2))
    a = small_mil(chunk=1).eval()([image]).logits
    b = small_mil(chunk=1000).eval()([image]).logits
    torch.testing.assert_close(a, b)


def test_the_bag_is_the_tissue_cells_and_nothing_else_is_read():
    tissue = np.zeros((4, 5), dtype=bool)
    tissue[1, 2] = tissue[2, 3] = tissue[3, 0] = True
    spy = TissueSpy(TissueImage(noise_image(3), tissue))
    out = small_mil(chunk=2)([spy])
    patch_calls = [call for call in spy.calls if call[0] == "patches"]
    assert [call[1] for call in patch_calls] == [2, 1, 1]  # the bag in chunks of 2, then the top instance
    assert all(call[2] == PATCH for call in patch_calls)
    assert not [call for call in spy.calls if call[0] != "patches"]  # no views, no regions
    probs = out.attention[0].stage1.probs
    assert set(probs.reshape(-1).nonzero()[:, 0].tolist()) <= {1 * 5 + 2, 2 * 5 + 3, 3 * 5 + 0}
    assert out.attention[0].sampled.cells.item() in {7, 13, 15}


def test_an_image_without_tissue_is_one_bag_of_every_cell():
    spy = TissueSpy(TissueImage(noise_image(4), np.zeros((4, 5), dtype=bool)))
    small_mil(chunk=100)([spy])
    assert [call[1] for call in spy.calls if call[0] == "patches"] == [20, 1]


def test_below_full_resolution_the_instances_are_region_views():
    spy = TissueSpy(TissueImage(noise_image(5, 64, 80), np.ones((4, 5), dtype=bool)))
    out = build_model("mil", 2, patch=16, scale=0.5, width=4, chunk=100)([spy])
    assert {call[0] for call in spy.calls} == {"region_view"}
    assert len(spy.calls) == 20 + 1 and {call[3:] for call in spy.calls} == {(16, 0.5)}
    assert spy.largest == 3 * 8 * 8
    assert out.attention[0].stage1.probs.shape == (4, 5)


def accuracy_before_and_after_training(model: torch.nn.Module, steps: int, lr: float) -> tuple[float, float]:
    """Held-out accuracy on 64 one-instance bags (:func:`one_instance_bags`, 4 x 5 instances of 8 px)
    before and after ``steps`` Adam steps of the training loss (with the model's own terms) on 64 others."""
    images, labels = one_instance_bags(64, seed=0)
    held_out, held_out_labels = one_instance_bags(64, seed=1)
    before = accuracy(model, held_out, held_out_labels)
    train_steps(model, images, labels, steps, lr=lr)
    return before, accuracy(model, held_out, held_out_labels)


@pytest.mark.slow
def test_it_learns_bags_in_which_one_instance_carries_the_label():
    """A positive bag holds one checkered instance among 20: training on the top instance finds it
    (held-out accuracy 1.0 for initialisation seeds 0-2; about 4 s)."""
    before, after = accuracy_before_and_after_training(small_mil(chunk=20), steps=100, lr=1e-2)
    assert before <= 0.6 and after >= 0.9


@pytest.mark.slow
def test_choosing_the_instance_at_random_stays_at_chance():
    """The broken variant: the same training with the instance ranked at random instead of by the
    network (1/20 of the positive bags' chosen instances carry the cue)."""
    model = small_mil(chunk=20)
    ranks = torch.Generator().manual_seed(5)
    model.instance_scores = lambda image, centres: torch.rand(len(centres), generator=ranks)
    _, after = accuracy_before_and_after_training(model, steps=100, lr=1e-2)
    assert after <= 0.65


@pytest.mark.parametrize(("params", "key"), [({"patch": 4}, "patch"), ({"width": 0}, "width"), ({"chunk": 0}, "chunk"), ({"patch": 20, "scale": 0.25}, "scale")])
def test_bad_params_name_the_key(params, key):
    with pytest.raises(ConfigError, match=key):
        build_model("mil", 2, **params)
