"""IPS: chunk-by-chunk selection keeps the bag's best M (exactly, with one head), its memory stays
bounded by M + I, only tissue is read, the slide is classified from the selected instances, and it
learns bags in which one instance carries the label -- which selecting at random does not."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.models.test_mil import TissueImage, TissueSpy, accuracy_before_and_after_training, noise_image
from zoomin.errors import ConfigError
from zoomin.image_access import InMemoryImage
from zoomin.models import build_model
from zoomin.models.tissue_bags import cell_centres, instance_grid

pytestmark = pytest.mark.usefixtures("single_thread")

PATCH = 8


def small_ips(**overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("ips", 2, **{"patch": PATCH, "width": 4, "memory": 3, "chunk": 4, "heads": 2, **overrides})


def bag_embeddings(model, image) -> tuple[torch.Tensor, torch.Tensor]:
    shape, cells = instance_grid(image, PATCH)
    centres = cell_centres(cells, shape[1], PATCH)
    with torch.no_grad():
        return centres, model.encoder(image.patches(centres, PATCH))


@pytest.mark.parametrize("chunk", [1, 3, 7, 100])
def test_with_one_head_the_selection_is_the_bags_top_m_for_any_chunk(chunk):
    """With one head the score is a softmax of query-key logits, so the memory always holds the best
    M seen so far: iterating must end with the top M of the whole bag."""
    model = small_ips(heads=1, chunk=chunk).eval()
    image = InMemoryImage(noise_image(1))
    centres, embeddings = bag_embeddings(model, image)
    with torch.no_grad():
        expected = torch.topk(model.pool.scores(embeddings), 3).indices.sort().values
    assert model.select(image, centres).tolist() == expected.tolist()


def test_the_slide_is_classified_from_the_selected_instances():
    model = small_ips().eval()
    image = InMemoryImage(noise_image(2))
    out = model([image])
    centres, _ = bag_embeddings(model, image)
    kept = model.select(image, centres)
    with torch.no_grad():
        pooled, weights = model.pool(model.encoder(image.patches(centres[kept], PATCH)))
        torch.testing.assert_close(out.logits[0], model.classifier(pooled))
    assert out.attention[0].sampled.cells.tolist() == kept.tolist()
    probs = out.attention[0].stage1.probs.reshape(-1)
    assert probs.nonzero()[:, 0].tolist() == kept.tolist()
    torch.testing.assert_close(probs[kept].float(), weights)


def test_memory_stays_bounded_and_only_tissue_is_read():
    tissue = np.zeros((4, 5), dtype=bool)
    tissue[0, 1:] = tissue[2, :] = True  # 9 tissue cells
    spy = TissueSpy(TissueImage(noise_image(3), tissue))
    out = small_ips(memory=3, chunk=4)([spy])
    sizes = [call[1] for call in spy.calls if call[0] == "patches"]
    assert sizes == [3, 4, 2, 3]  # the first M, two chunks, then the M selected with gradients
    assert spy.largest == 4 * 3 * PATCH * PATCH  # never more than one chunk of pixels at once
    read = set(out.attention[0].sampled.cells.tolist())
    assert read <= set(np.flatnonzero(tissue).tolist()) and len(read) == 3


LEARNING = {"memory": 4, "chunk": 8, "heads": 1}  # 4 of the 20 instances kept, two chunks of 8 after the first 4


@pytest.mark.slow
def test_it_learns_bags_in_which_one_instance_carries_the_label():
    """The cross-attention must learn to keep and weigh the one checkered instance among 20 (held-out
    accuracy 1.0 for initialisation seeds 0-2; about 8 s)."""
    before, after = accuracy_before_and_after_training(small_ips(**LEARNING), steps=100, lr=3e-3)
    assert before <= 0.6 and after >= 0.9


@pytest.mark.slow
def test_selecting_instances_at_random_stays_at_chance():
    """The broken variant: M instances kept at random (the cue is among them in 4 of 20 positive bags)."""
    model = small_ips(**LEARNING)
    draws = torch.Generator().manual_seed(5)
    model.select = lambda image, centres: torch.randperm(len(centres), generator=draws)[:4].sort().values
    _, after = accuracy_before_and_after_training(model, steps=100, lr=3e-3)
    assert after <= 0.65


@pytest.mark.parametrize(
    ("params", "key"),
    [({"memory": 0}, "memory"), ({"chunk": 0}, "chunk"), ({"width": 4, "heads": 3}, "heads"),
     ({"patch": 20, "scale": 0.25}, "scale")],
)
def test_bad_params_name_the_key(params, key):
    with pytest.raises(ConfigError, match=key):
        build_model("ips", 2, **params)
