"""Batched Zoom-In and ATS: the same estimate as the per-image computation, under the same draws.

A reference implementation kept here computes each image alone, the way the models did before
they were batched: its own view (no padding), one stage-2 view per drawn tile, ``f`` per image,
and the estimators written as exclusive prefix sums (``sum_{l<i} p f + sg(1 - S_{i-1}) p/sg(p) f``),
not as the batched per-draw weights. It takes the draws the batched call made (the counts and the
sampled centres of its attention output) and must give the same representation, entropy,
attention maps and parameter gradients. A batch of images of different sizes checks the padding
and the masked attention nets. A profiler count checks that a step's op count does not grow with
the batch (no per-image or per-draw loop in the forward and backward passes).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from zoomin.image_access import InMemoryImage
from zoomin.models import build_model

pytestmark = pytest.mark.usefixtures("single_thread")

ZOOMIN = {"tile": 16, "subtile": 5, "s1": 0.25, "s2": 0.5, "n": 7}
ATS = {"scale": 0.25, "patch": 5, "n": 6}
TOLERANCE = 1e-5


def images(sizes=((64, 64), (50, 70), (37, 29))) -> list[InMemoryImage]:
    rng = np.random.default_rng(3)
    return [InMemoryImage(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in sizes]


def old_without_replacement(probs, indices, features):
    """The estimator as it was written per image: exclusive prefix sums."""
    drawn = probs[indices]
    mass_before = torch.cumsum(drawn, 0) - drawn
    remaining = (1.0 - mass_before).detach().clamp_min(0.0)
    weighted = drawn[:, None] * features
    exact_part = torch.cumsum(weighted, 0) - weighted
    return (exact_part + (remaining * drawn / drawn.detach())[:, None] * features).mean(0)


def entropy(p):
    return -(p * torch.log(p.clamp_min(torch.finfo(p.dtype).tiny))).sum()


def zoomin_alone(model, image, attention):
    """One image's Psi_hat and entropy from its own views, with the batched call's draws."""
    rows, cols = model.grid(image)
    view = image.view(model.s1)[:, : rows * model.pool, : cols * model.pool]
    view = F.pad(view, (0, cols * model.pool - view.shape[2], 0, rows * model.pool - view.shape[1]))
    a = torch.softmax(F.avg_pool2d(model.tile_attention(view[None])[:, None], model.pool).reshape(-1), 0)
    counts = attention.counts.reshape(-1)
    step = model.tile / model.view2
    psi, entropies, maps = 0.0, [], {}
    for t in counts.nonzero()[:, 0].tolist():
        row, col = divmod(t, cols)
        region = image.region_view(row * model.tile, col * model.tile, model.tile, model.s2)
        b = torch.softmax(model.subtile_attention(region[None]).reshape(-1), 0)
        centres = attention.sampled.centres[attention.sampled.cells == t]
        y = torch.round((centres[:, 0] - row * model.tile) / step - 0.5).long()
        x = torch.round((centres[:, 1] - col * model.tile) / step - 0.5).long()
        feats = model.features(image.patches(centres, model.subtile))
        inner = old_without_replacement(b, y * model.view2 + x, feats)
        psi = psi + counts[t] / counts.sum() * a[t] / a[t].detach() * inner
        entropies.append(entropy(b))
        maps[t] = b.reshape(model.view2, model.view2)
    return psi, entropy(a) + torch.stack(entropies).mean(), a.reshape(rows, cols), maps


def ats_alone(model, image, attention):
    logits = model.attention(image.view(model.scale)[None])[0]
    p = torch.softmax(logits.reshape(-1), 0)
    h, w = logits.shape
    centres = attention.sampled.centres
    y = torch.round(centres[:, 0] * h / image.size[0] - 0.5).long()
    x = torch.round(centres[:, 1] * w / image.size[1] - 0.5).long()
    feats = model.features(image.patches(centres, model.patch))
    return old_without_replacement(p, y * w + x, feats), entropy(p), p.reshape(h, w)


def grads(model, loss) -> dict[str, torch.Tensor]:
    model.zero_grad()
    loss.backward()
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def assert_same_grads(batched, alone):
    assert batched.keys() == alone.keys()
    for name in batched:
        assert torch.allclose(batched[name], alone[name], atol=TOLERANCE, rtol=1e-4), name


@pytest.mark.parametrize("sampling", ["sample", "topk"])
def test_batched_zoomin_equals_each_image_alone(sampling):
    torch.manual_seed(0)
    model = build_model("zoomin", 2, **ZOOMIN)
    batch = images()
    weights = torch.randn(model.features.out_dim)
    rep = model.represent(batch, torch.Generator().manual_seed(1), sampling)
    batched = grads(model, (rep.features @ weights).sum())
    alone = [zoomin_alone(model, image, attention) for image, attention in zip(batch, rep.attention)]
    for (psi, ent, a, maps), value, entropy_, attention in zip(alone, rep.features, rep.entropy, rep.attention):
        assert torch.allclose(value, psi, atol=TOLERANCE)
        assert torch.allclose(entropy_, ent, atol=TOLERANCE)
        assert torch.allclose(attention.stage1.probs, a, atol=1e-6)
        assert set(attention.stage2) == set(maps)
        for t, b in maps.items():
            assert torch.allclose(attention.stage2[t].probs, b, atol=1e-6)
        assert int(attention.counts.sum()) == ZOOMIN["n"] and len(attention.sampled.centres) <= ZOOMIN["n"]
    assert_same_grads(batched, grads(model, sum(psi @ weights for psi, *_ in alone)))


@pytest.mark.parametrize("sampling", ["sample", "topk"])
def test_batched_ats_equals_each_image_alone(sampling):
    torch.manual_seed(0)
    model = build_model("ats", 2, **ATS)
    batch = images()
    weights = torch.randn(model.features.out_dim)
    rep = model.represent(batch, torch.Generator().manual_seed(1), sampling)
    batched = grads(model, (rep.features @ weights).sum())
    alone = [ats_alone(model, image, attention) for image, attention in zip(batch, rep.attention)]
    for (psi, ent, p), value, entropy_, attention in zip(alone, rep.features, rep.entropy, rep.attention):
        assert torch.allclose(value, psi, atol=TOLERANCE)
        assert torch.allclose(entropy_, ent, atol=TOLERANCE)
        assert torch.allclose(attention.stage1.probs, p, atol=1e-6)
        assert len(attention.sampled.centres) == ATS["n"]
    assert_same_grads(batched, grads(model, sum(psi @ weights for psi, *_ in alone)))


def test_a_broken_padding_mask_is_caught(monkeypatch):
    """The comparison above has teeth: without the mask, the views padded to the batch's largest
    give different logits at the images' edges."""
    from zoomin.models.attention import AttentionNet

    unmasked = AttentionNet.forward
    monkeypatch.setattr(AttentionNet, "forward", lambda self, views, mask=None: unmasked(self, views))
    torch.manual_seed(0)
    model = build_model("zoomin", 2, **ZOOMIN)
    batch = images()
    rep = model.represent(batch, torch.Generator().manual_seed(1))
    worst = max(
        float((attention.stage1.probs - zoomin_alone(model, image, attention)[2]).abs().max().detach())
        for image, attention in zip(batch, rep.attention)
    )
    assert worst > 1e-3


@pytest.mark.parametrize("model_type", ["zoomin", "ats"])
def test_the_control_variate_changes_only_the_attention_gradients(model_type):
    """Same draws, same value; the feature net's and classifier's gradients are unchanged; the
    attention nets' gradients differ (the baselines enter only their score-function part)."""
    params = ZOOMIN if model_type == "zoomin" else {**ATS, "replace": True}
    batch = images()
    outputs = {}
    for control_variate in (False, True):
        torch.manual_seed(0)
        model = build_model(model_type, 2, **params, control_variate=control_variate)
        out = model(batch, torch.Generator().manual_seed(4))
        outputs[control_variate] = (out.logits.detach(), grads(model, out.logits[:, 0].sum()))
    (plain_logits, plain), (cv_logits, cv) = outputs[False], outputs[True]
    assert torch.equal(plain_logits, cv_logits)
    for name in plain:
        if "attention" in name:
            continue
        assert torch.allclose(plain[name], cv[name], atol=1e-6), name
    assert any(not torch.allclose(plain[n], cv[n], atol=1e-6) for n in plain if "attention" in n)


def count_ops(model, batch) -> int:
    from torch.profiler import ProfilerActivity, profile

    generator = torch.Generator().manual_seed(0)
    model(batch, generator).logits.sum().backward()  # warm-up: the images' cached views
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        model(batch, generator).logits.sum().backward()
    return sum(event.count for event in prof.key_averages())


@pytest.mark.parametrize("model_type", ["zoomin", "ats"])
def test_a_training_step_runs_as_many_ops_at_any_batch_size(model_type):
    """No loop in the forward or backward pass grows with the batch or the draws: a step over 16
    images runs (nearly) the ops of a step over 2 (per-image loops made it ~7x before)."""
    torch.manual_seed(0)
    params = ZOOMIN if model_type == "zoomin" else ATS
    model = build_model(model_type, 2, **params, control_variate=True).train()
    rng = np.random.default_rng(0)
    few, many = ([InMemoryImage(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) for _ in range(b)] for b in (2, 16))
    assert count_ops(model, many) <= 1.1 * count_ops(model, few)
