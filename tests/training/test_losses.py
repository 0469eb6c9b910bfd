"""Losses: weighted cross-entropy, entropy regulariser, contrastive loss, mask MSE, total."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from zoomin.image_access import InMemoryImage
from zoomin.models import build_model
from zoomin.models.distributions import complement
from zoomin.training.losses import (
    LossConfig,
    attention_mask_loss,
    contrastive_loss,
    cross_entropy,
    entropy_regulariser,
    mask_mse,
    total_loss,
)

pytestmark = pytest.mark.usefixtures("single_thread")  # tiny nets: one thread is faster

SMALL_ZOOMIN = {"tile": 16, "subtile": 5, "s1": 0.25, "s2": 0.5, "n": 4}


def random_image(seed: int, size: int = 64) -> InMemoryImage:
    rng = np.random.default_rng(seed)
    return InMemoryImage(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


def zoomin(num_classes: int = 2):
    torch.manual_seed(0)
    return build_model("zoomin", num_classes, **SMALL_ZOOMIN)


def test_cross_entropy_with_class_weights_matches_hand_computation():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0], [-1.0, 3.0, 1.0]])
    targets = torch.tensor([0, 2, 1])
    weights = torch.tensor([1.0, 2.0, 4.0])
    nll = [
        -(row[t] - math.log(sum(math.exp(v) for v in row)))
        for row, t in zip(logits.tolist(), targets.tolist())
    ]
    w = [weights[t].item() for t in targets.tolist()]
    expected = sum(wi * li for wi, li in zip(w, nll)) / sum(w)
    assert cross_entropy(logits, targets, weights).item() == pytest.approx(expected, rel=1e-6)
    assert cross_entropy(logits, targets).item() == pytest.approx(sum(nll) / 3, rel=1e-6)


def test_entropy_regulariser_rewards_spread_attention():
    flat, peaked = torch.tensor([2.0, 2.0]), torch.tensor([0.1, 0.3])
    assert entropy_regulariser(flat, 0.5).item() == pytest.approx(-1.0)
    assert entropy_regulariser(flat, 0.5) < entropy_regulariser(peaked, 0.5)


def test_zoomin_entropy_is_tile_entropy_plus_mean_subtile_entropy():
    model = zoomin()
    out = model([random_image(0)], torch.Generator().manual_seed(0))
    attention = out.attention[0]

    def h(p):
        p = p.reshape(-1)
        return -(p * p.log()).sum()

    expected = h(attention.stage1.probs) + torch.stack([h(b.probs) for b in attention.stage2.values()]).mean()
    assert out.entropy[0].item() == pytest.approx(expected.item(), rel=1e-5)


def test_complement_distribution():
    assert torch.allclose(complement(torch.tensor([0.5, 0.25, 0.25])), torch.tensor([0.25, 0.375, 0.375]))
    assert torch.allclose(complement(torch.tensor([1.0])), torch.tensor([1.0]))
    assert torch.allclose(complement(torch.tensor([1.0, 0.0, 0.0])), torch.tensor([0.0, 0.5, 0.5]))


def test_the_complement_of_any_attention_is_within_1_over_n_of_uniform():
    """Why the contrastive draw of sub-tiles is nearly uniform (docs/contrastive.md): whatever the
    attention over n positions, normalise(1 - p) is at most 1/n from uniform in total variation,
    and a one-hot attention is that far."""
    generator = torch.Generator().manual_seed(0)
    for n in (4, 50, 2500):
        uniform = torch.full((n,), 1.0 / n, dtype=torch.float64)
        one_hot = torch.zeros(n, dtype=torch.float64)
        one_hot[0] = 1.0
        peaked = torch.softmax(torch.randn(n, generator=generator, dtype=torch.float64) * 20, dim=0)
        for p in (uniform, one_hot, peaked, torch.softmax(torch.randn(n, generator=generator, dtype=torch.float64), 0)):
            assert 0.5 * (complement(p) - uniform).abs().sum().item() <= 1.0 / n + 1e-12
        assert 0.5 * (complement(one_hot) - uniform).abs().sum().item() == pytest.approx(1.0 / n)


def test_contrastive_loss_is_zero_without_positives():
    model = zoomin()
    images = [random_image(1), random_image(2)]
    loss = contrastive_loss(model, images, torch.tensor([0, 0]), (1,), 0, torch.Generator())
    assert loss.item() == 0.0


def test_contrastive_loss_is_positive_and_trains_attention_and_features():
    model = zoomin()
    images = [random_image(1), random_image(2), random_image(3)]
    loss = contrastive_loss(
        model, images, torch.tensor([1, 0, 1]), (1,), 0, torch.Generator().manual_seed(0)
    )
    assert loss.item() > 0
    loss.backward()
    for net in (model.tile_attention, model.subtile_attention, model.features, model.classifier):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_contrastive_loss_targets_the_reference_class():
    model = zoomin(num_classes=3)
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor([0.0, 5.0, -5.0]))
    images = [random_image(4)]
    to_reference = contrastive_loss(model, images, torch.tensor([2]), (1, 2), 1, torch.Generator())
    to_other = contrastive_loss(model, images, torch.tensor([2]), (1, 2), 2, torch.Generator())
    assert to_reference.item() < 0.01 < 9.0 < to_other.item()


def test_a_contrastive_example_weighs_as_much_as_one_image_of_the_batch():
    """One positive among four images: its contrastive cross-entropy counts a quarter, like each
    image's cross-entropy in the batch mean (the loss divided by the positives weighed it fully)."""
    model = zoomin()
    images = [random_image(6), random_image(7), random_image(8), random_image(9)]
    loss = contrastive_loss(model, images, torch.tensor([0, 1, 0, 0]), (1,), 0, torch.Generator().manual_seed(3))
    logits = model.contrastive_logits([images[1]], torch.Generator().manual_seed(3))
    alone = torch.nn.functional.cross_entropy(logits, torch.tensor([0]))
    assert loss.item() == pytest.approx(alone.item() / 4, rel=1e-5)
    two = contrastive_loss(model, images, torch.tensor([1, 1, 0, 0]), (1,), 0, torch.Generator().manual_seed(3))
    pair = model.contrastive_logits(images[:2], torch.Generator().manual_seed(3))
    assert two.item() == pytest.approx(
        torch.nn.functional.cross_entropy(pair, torch.tensor([0, 0]), reduction="sum").item() / 4, rel=1e-5
    )


def test_contrastive_tiles_are_drawn_from_the_complement_of_attention():
    model = zoomin()
    a = torch.softmax(50 * torch.tensor([1.0] + [0.0] * 15), dim=0)  # tile 0 takes all attention
    q, counts = model._allocate(a, "sample", torch.Generator().manual_seed(0), contrast=True)
    assert torch.allclose(q, complement(a))
    assert counts[0] == 0 and counts.sum() == SMALL_ZOOMIN["n"]
    _, counts = model._allocate(a, "sample", torch.Generator().manual_seed(0), contrast=False)
    assert counts[0] == SMALL_ZOOMIN["n"]


def test_contrastive_loss_is_zero_for_cnns():
    model = build_model("cnn", 2, scale=0.25)
    loss = contrastive_loss(model, [random_image(5)], torch.tensor([1]), (1,), 0, torch.Generator())
    assert loss.item() == 0.0


def test_mask_mse_area_averages_the_mask():
    attention = torch.tensor([[0.7, 0.1], [0.1, 0.1]])
    mask = torch.zeros(4, 4)
    mask[:2, :2] = 1.0
    mask[2:, 2:3] = 1.0  # half of the bottom-right cell
    fractions = torch.tensor([[1.0, 0.0], [0.0, 0.5]])
    expected_raw = ((attention - fractions) ** 2).mean()
    expected_normalised = ((attention - fractions / 1.5) ** 2).mean()
    assert mask_mse(attention, mask, normalise=False).item() == pytest.approx(expected_raw.item())
    assert mask_mse(attention, mask).item() == pytest.approx(expected_normalised.item())
    uniform = torch.full((2, 2), 0.25)
    assert mask_mse(uniform, torch.zeros(4, 4)).item() == pytest.approx(0.0)


def test_zoomin_mask_loss_trains_both_attention_nets_and_ignores_mask_resolution():
    model = zoomin()
    out = model([random_image(6)], torch.Generator().manual_seed(0))
    mask = torch.zeros(64, 64)
    mask[8:24, 20:40] = 1.0
    full = attention_mask_loss(out.attention[0], mask)
    half = attention_mask_loss(out.attention[0], mask[::2, ::2])
    assert full.item() == pytest.approx(half.item(), rel=1e-5)
    full.backward()
    for net in (model.tile_attention, model.subtile_attention):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_total_loss_combines_the_parts():
    model = zoomin()
    images = [random_image(7), random_image(8)]
    labels = torch.tensor([1, 0])
    masks = [torch.ones(64, 64), None]
    generator = torch.Generator().manual_seed(0)
    out = model(images, generator)
    config = LossConfig(entropy_weight=0.1, contrastive=True, mask_weight=2.0)
    parts = total_loss(out, labels, config, model, images, generator, masks)
    expected = parts.cross_entropy + parts.contrastive - 0.1 * parts.entropy + 2.0 * parts.mask
    assert parts.total.item() == pytest.approx(expected.item(), rel=1e-6)
    assert parts.contrastive.item() > 0 and parts.mask.item() > 0
    assert set(parts.as_floats()) == {"total", "cross_entropy", "contrastive", "entropy", "mask", "auxiliary"}
    parts.total.backward()

    plain = total_loss(out, labels, LossConfig(entropy_weight=0.0))
    assert plain.contrastive.item() == 0.0 and plain.mask.item() == 0.0
    assert plain.total.item() == pytest.approx(cross_entropy(out.logits, labels).item())
