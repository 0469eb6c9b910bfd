"""CLAM-SB: gated attention pooling as written, the encoder frozen and each slide embedded once but
measured from the pixels, the instance clustering loss on the most and least attended instances,
it trains."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from tests.models.test_mil import TissueImage, TissueSpy, accuracy_before_and_after_training, noise_image
from zoomin.errors import ConfigError
from zoomin.image_access import InMemoryImage
from zoomin.measure import measure_inference
from zoomin.models import build_model
from zoomin.models.tissue_bags import cell_centres, instance_grid

pytestmark = pytest.mark.usefixtures("single_thread")

PATCH = 8


def small_clam(**overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("clam_sb", 2, **{"patch": PATCH, "width": 4, "hidden": 8, "k_sample": 2, **overrides})


class FileImage(InMemoryImage):
    """An in-memory image with a file path, as the images of a dataset have."""

    source = Path("images/a.png")


class TissueFileImage(TissueImage):
    source = Path("images/b.png")


def test_the_slide_logits_are_gated_attention_pooling_of_the_instances():
    model = small_clam().eval()
    image = InMemoryImage(noise_image(1))
    out = model([image])
    shape, cells = instance_grid(image, PATCH)
    with torch.no_grad():
        h = F.relu(model.fc(model.encoder(image.patches(cell_centres(cells, shape[1], PATCH), PATCH))))
        gate = torch.tanh(model.attention.v(h)) * torch.sigmoid(model.attention.u(h))
        a = torch.softmax(model.attention.w(gate)[:, 0], dim=0)
        torch.testing.assert_close(out.logits[0], model.classifier(a @ h))
    torch.testing.assert_close(out.attention[0].stage1.probs.reshape(-1).float(), a)


def test_the_encoder_is_frozen_and_a_slide_is_embedded_once_but_measured_from_the_pixels():
    model = small_clam()
    encoder_before = [p.clone() for p in model.encoder.parameters()]
    fc_before = model.fc.weight.clone()
    spy = TissueSpy(TissueFileImage(noise_image(2), torch.ones(4, 5, dtype=torch.bool)))
    optimiser = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(2):
        optimiser.zero_grad()
        out = model([spy])
        (F.cross_entropy(out.logits, torch.tensor([1])) + model.auxiliary_loss(out, torch.tensor([1]))).backward()
        optimiser.step()
    assert len(spy.calls) == 1  # the 20 instances in one chunk, once: the second step reused them
    assert all(torch.equal(a, b) for a, b in zip(encoder_before, model.encoder.parameters()))
    assert not torch.equal(fc_before, model.fc.weight)
    model.eval()
    model([spy])
    assert len(spy.calls) == 1  # validation reuses them too
    measure_inference(model, spy, "cpu", seed=0, repeats=2, warmup=1)
    assert len(spy.calls) == 1 + 5  # every measured pass (FLOPs, memory, 3 timed) from the pixels


def test_the_instance_loss_pseudo_labels_the_attention_extremes_for_the_true_class():
    model = small_clam(k_sample=3)
    out = model([InMemoryImage(noise_image(3))])
    hidden, weights = out.extras[0]
    order = torch.argsort(weights.detach(), descending=True)
    chosen = torch.cat([order[:3], order[-3:]])
    expected = F.cross_entropy(model.instance_classifiers[1](hidden[chosen]), torch.tensor([1, 1, 1, 0, 0, 0]))
    torch.testing.assert_close(model.auxiliary_loss(out, torch.tensor([1])), (0.3 / 0.7) * expected)


def test_it_learns_bags_whose_instances_carry_the_bag_label():
    """Only the layers above the frozen random encoder learn: more steps than MIL and IPS need."""
    before, after = accuracy_before_and_after_training(small_clam(), steps=80)
    assert before <= 0.75 and after == 1.0


@pytest.mark.parametrize(("params", "key"), [({"hidden": 1}, "hidden"), ({"bag_weight": 0.0}, "bag_weight")])
def test_bad_params_name_the_key(params, key):
    with pytest.raises(ConfigError, match=key):
        build_model("clam_sb", 2, **params)
