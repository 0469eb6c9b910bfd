"""Losses: weighted cross-entropy, the entropy regulariser and what lambda means on each scale,
contrastive loss, mask MSE against a distribution or a binary target, the total from its parts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from zoomin.image_access import InMemoryImage
from zoomin.models import build_model
from zoomin.models.distributions import complement
from zoomin.models.output import Attention, AttentionMap, ModelOutput
from zoomin.training.losses import (
    LossConfig,
    attention_entropy,
    attention_mask_loss,
    contrastive_loss,
    cross_entropy,
    entropy_per_entry,
    entropy_regulariser,
    mask_mse,
    mask_target,
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


LN2 = math.log(2.0)


def hand_made_output() -> ModelOutput:
    """One image whose stage-1 map is (1/2, 1/4, 1/4, 0) over 2x2 tiles and whose two drawn tiles'
    maps are uniform over 4 positions and one-hot over 4; the model's own (image-scale) term is
    H(a) + mean H(b_t) = 1.5 ln 2 + (2 ln 2 + 0) / 2 = 2.5 ln 2."""
    a = torch.tensor([[0.5, 0.25], [0.25, 0.0]], requires_grad=True)
    b_uniform = torch.full((2, 2), 0.25)
    b_one_hot = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    attention = Attention(
        image_size=(8, 8),
        stage1=AttentionMap(a, (0.0, 0.0), (4.0, 4.0)),
        stage2={0: AttentionMap(b_uniform, (0.0, 0.0), (2.0, 2.0)), 2: AttentionMap(b_one_hot, (4.0, 0.0), (2.0, 2.0))},
    )
    return ModelOutput(torch.zeros(1, 2), torch.tensor([2.5 * LN2]), [attention])


def test_lambda_multiplies_the_entropy_per_image_or_per_entry_as_hand_computed():
    """What lambda means (docs/method.md §9.2). On the image scale it multiplies the model's term,
    H(a) + mean_t H(b_t); on the entry scale each map's entropy divided by its number of entries,
    summed over the maps, as the authors' ``lambda * sum(p log p) / len(p)``:
    (1.5 ln 2) / 4 + (2 ln 2) / 4 + 0 / 4 = 0.875 ln 2 -- the same lambda weighs a fifth as much."""
    output = hand_made_output()
    assert attention_entropy(output, "image").item() == pytest.approx(2.5 * LN2)
    assert attention_entropy(output, "entry").item() == pytest.approx(0.875 * LN2, rel=1e-6)
    labels = torch.tensor([1])
    for scale, term in (("image", 2.5 * LN2), ("entry", 0.875 * LN2)):
        parts = total_loss(output, labels, LossConfig(entropy_weight=0.1, entropy_scale=scale))
        assert parts.entropy.item() == pytest.approx(term, rel=1e-6)
        assert (parts.total - parts.cross_entropy).item() == pytest.approx(-0.1 * term, rel=1e-6)
    with pytest.raises(ValueError, match="entropy scale"):
        attention_entropy(output, "pixel")


def test_the_entry_scale_follows_the_live_maps_of_zoomin_and_ats_and_leaves_cnns_without_a_term():
    def h(p):
        p = p.reshape(-1)
        return -(p * p.clamp_min(1e-30).log()).sum()

    model = zoomin()
    out = model([random_image(0), random_image(1)], torch.Generator().manual_seed(0))
    for value, attention in zip(entropy_per_entry(out), out.attention):
        stage1 = attention.stage1.probs
        expected = h(stage1) / stage1.numel() + sum(h(b.probs) / b.probs.numel() for b in attention.stage2.values())
        assert len(attention.stage2) >= 2  # summed over the drawn tiles, not averaged: the test can tell
        assert value.item() == pytest.approx(expected.item(), rel=1e-5)
    entropy_per_entry(out).sum().backward()  # the term trains both attention nets through the live maps
    for net in (model.tile_attention, model.subtile_attention):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
    torch.manual_seed(0)
    ats = build_model("ats", 2, scale=0.25, patch=5, n=4)
    out = ats([random_image(2)], torch.Generator().manual_seed(0))
    probs = out.attention[0].stage1.probs
    assert entropy_per_entry(out)[0].item() == pytest.approx((h(probs) / probs.numel()).item(), rel=1e-5)
    cnn_out = build_model("cnn", 2, scale=0.25).eval()([random_image(3)])
    assert torch.equal(entropy_per_entry(cnn_out), torch.zeros(1))


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


def test_the_contrastive_gradient_reaches_the_attention_nets_through_the_complement(monkeypatch):
    """docs/method.md §9.3: the contrastive loss trains f and g directly and both attention nets
    through normalise(1 - a) and normalise(1 - b_t). With the complement cut from the graph (a
    broken wiring) the attention nets get no gradient at all, while f and g still do."""
    import zoomin.models.zoomin_net as zoomin_net

    def gradients() -> dict[str, bool]:
        model = zoomin()
        images = [random_image(1), random_image(2), random_image(3)]
        loss = contrastive_loss(model, images, torch.tensor([1, 0, 1]), (1,), 0, torch.Generator().manual_seed(0))
        loss.backward()
        nets = {"a": model.tile_attention, "b": model.subtile_attention, "f": model.features, "g": model.classifier}
        return {
            name: any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
            for name, net in nets.items()
        }

    assert gradients() == {"a": True, "b": True, "f": True, "g": True}
    monkeypatch.setattr(zoomin_net, "complement", lambda probs, *support: complement(probs, *support).detach())
    assert gradients() == {"a": False, "b": False, "f": True, "g": True}


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


def test_mask_targets_are_the_normalised_area_average_or_the_binary_map():
    attention = torch.tensor([[0.7, 0.1], [0.1, 0.1]])
    mask = torch.zeros(4, 4)
    mask[:2, :2] = 1.0
    mask[2:, 2:3] = 1.0  # half of the bottom-right cell
    fractions = torch.tensor([[1.0, 0.0], [0.0, 0.5]])
    assert torch.allclose(mask_target(mask, (2, 2)), fractions / 1.5)
    assert torch.equal(mask_target(mask, (2, 2), "binary"), torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    assert mask_mse(attention, mask).item() == pytest.approx(((attention - fractions / 1.5) ** 2).mean().item())
    binary = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert mask_mse(attention, mask, "binary").item() == pytest.approx(((attention - binary) ** 2).mean().item())
    # one annotated pixel makes its cell 1 (as a patch is labelled in appendix L's pre-training)
    speck = torch.zeros(8, 8)
    speck[5, 6] = 0.25
    assert mask_target(speck, (2, 2), "binary").tolist() == [[0.0, 0.0], [0.0, 1.0]]
    # a mask coarser than the grid: each cell takes the mask pixel it lies in
    coarse = torch.tensor([[0.0, 1.0], [0.0, 0.0]])
    assert mask_target(coarse, (4, 4), "binary").tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 0, 0], [0, 0, 0, 0]]
    # an empty mask: uniform as a distribution, all zero as a binary map
    uniform = torch.full((2, 2), 0.25)
    assert mask_mse(uniform, torch.zeros(4, 4)).item() == pytest.approx(0.0)
    assert mask_mse(uniform, torch.zeros(4, 4), "binary").item() == pytest.approx(0.0625)
    with pytest.raises(ValueError, match="mask target"):
        mask_target(mask, (2, 2), "fraction")


def test_the_binary_target_reaches_total_loss_and_weighs_far_more_than_the_distribution():
    """Why the paper config uses the binary target with mu = 1 (docs/method.md §12): against a
    distribution over many cells the MSE is tiny, against the binary map it is not."""
    model = zoomin()
    image = random_image(10)
    out = model([image], torch.Generator().manual_seed(0))
    mask = torch.zeros(64, 64)
    mask[8:24, 20:40] = 1.0
    labels = torch.tensor([1])
    parts = {
        target: total_loss(out, labels, LossConfig(entropy_weight=0.0, mask_weight=1.0, mask_target=target), masks=[mask])
        for target in ("distribution", "binary")
    }
    for target, part in parts.items():
        assert part.mask.item() == pytest.approx(attention_mask_loss(out.attention[0], mask, target).item())
    assert parts["binary"].mask.item() > 10 * parts["distribution"].mask.item()


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


def test_total_loss_is_the_sum_of_independently_computed_parts():
    """Each part is computed here from its own definition (not read back from the result), so a
    wrong part, not only a wrong sign in the sum, fails: CE by hand, the contrastive loss from the
    same generator state, the entropy term as the model's mean, the mask MSE of the one masked image."""
    model = zoomin()
    images = [random_image(7), random_image(8)]
    labels = torch.tensor([1, 0])
    mask = torch.zeros(64, 64)
    mask[10:30, 5:25] = 1.0
    generator = torch.Generator().manual_seed(0)
    out = model(images, generator)
    state = generator.get_state()
    config = LossConfig(entropy_weight=0.1, contrastive=True, mask_weight=2.0)
    parts = total_loss(out, labels, config, model, images, generator, [mask, None])

    logits = out.logits.detach()
    ce = -sum(torch.log_softmax(row, 0)[y] for row, y in zip(logits, labels.tolist())) / 2
    replay = torch.Generator().set_state(state)
    con_logits = model.contrastive_logits([images[0]], replay).detach()  # image 0 is the only positive
    con = -torch.log_softmax(con_logits[0], 0)[0] / 2  # to the reference class, one image of two
    entropy = out.entropy.detach().mean()
    mse = attention_mask_loss(out.attention[0], mask).detach()
    assert parts.cross_entropy.item() == pytest.approx(ce.item(), rel=1e-6)
    assert parts.contrastive.item() == pytest.approx(con.item(), rel=1e-5)
    assert parts.entropy.item() == pytest.approx(entropy.item(), rel=1e-6)
    assert parts.mask.item() == pytest.approx(mse.item(), rel=1e-6)
    assert parts.total.item() == pytest.approx((ce + con - 0.1 * entropy + 2.0 * mse).item(), rel=1e-5)
    assert set(parts.as_floats()) == {"total", "cross_entropy", "contrastive", "entropy", "mask", "auxiliary"}

    plain = total_loss(out, labels, LossConfig(entropy_weight=0.0))
    assert plain.contrastive.item() == 0.0 and plain.mask.item() == 0.0
    assert plain.total.item() == pytest.approx(ce.item(), rel=1e-6)
