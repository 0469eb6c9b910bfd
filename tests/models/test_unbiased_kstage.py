"""Statistical tests: the K-stage Zoom-In and N from the data keep the estimate unbiased.

The machinery and the power of tests/models/test_unbiased.py (``BATCHES`` batch means of
``COPIES`` draws each, the Bonferroni limit on the largest of all z-scores, random projections of
every parameter group's gradient), here for

* three stages (image -> 32 px regions -> 16 px tiles -> 5 px sub-tiles), with and without the
  control variate: values and the gradients of the features and of all three attention nets;
* N from the stage-1 attention (``n_rule: perplexity``), at K = 2 and K = 3, on a batch of two
  images whose N differ, so the draws of one batch are ragged: each image's mean representation
  against its own exact representation;
* mutations the tests must catch, each through the quantity it biases: the middle stage's weight
  without its score correction (the stage-2 attention's gradient), the middle stage's counts not
  divided by their parent's count (the values), and the last stage's inclusive prefix sum (the
  values).
"""

from __future__ import annotations

import pytest
import torch

from tests.models.test_unbiased import (
    BATCHES,
    COPIES,
    PROJECTIONS,
    assert_flagged,
    assert_unbiased,
    flat_grad,
    inclusive_mass_weights,
    sharpen,
    structured_image,
)
from zoomin import estimators
from zoomin.models import stages
from zoomin.models.params import ZoomInKParams
from zoomin.models.zoomin_k import ZoomInKNet

pytestmark = [pytest.mark.usefixtures("single_thread"), pytest.mark.slow]

# Three stages on a 64 px image: 2 x 2 regions of 32 px (4 px of the 1/16 view), each 2 x 2 tiles
# of 16 px (4 px of its 1/8 view), each 4 x 4 sub-tile positions (its 1/4 view): the last stage is
# the concentrated setting of test_unbiased.py (16 positions, sharp attention), N = 12.
THREE = {"regions": (32, 16), "scales": (0.0625, 0.125, 0.25), "subtile": 5, "n": 12}
TWO = {"regions": (16,), "scales": (0.125, 0.25), "subtile": 5, "n": 12}
# N = round(c x perplexity) in [2, 16], c = 1 over the 16 tiles of K = 2 and 4 over the 4 regions
# of K = 3: the two images' attention differ, and so do their N (11 and 13; 14 and 12).
ADAPTIVE = {"n_rule": "perplexity", "n_min": 2, "n_max": 16}


def kstage_model(params: dict, control_variate: bool = False, seed: int = 0):
    torch.manual_seed(seed)
    model = ZoomInKNet(2, ZoomInKParams(**params, control_variate=control_variate))
    for net in model.stage_attention:
        sharpen(net, 16.0)
    groups = {"features": model.features, **{f"stage{k + 1}": net for k, net in enumerate(model.stage_attention)}}
    return model, groups


def bias_z_scores(model, groups, images, seed: int = 0) -> dict[str, torch.Tensor]:
    """``(MC mean - exact) / SE`` of each image's Psi and of the projected gradients of the batch mean
    of ``w . Psi``; each batch holds ``COPIES // len(images)`` copies of every image."""
    copies = COPIES // len(images)
    projector = torch.Generator().manual_seed(123)
    weights = torch.randn(model.features.out_dim, generator=projector)
    directions = {
        name: torch.randn(PROJECTIONS, sum(p.numel() for p in net.parameters()), generator=projector)
        for name, net in groups.items()
    }

    def measure(per_image: torch.Tensor, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        model.zero_grad()
        (batch @ weights).mean().backward()
        values = {name: directions[name] @ flat_grad(net) for name, net in groups.items()}
        values["psi"] = per_image.detach().reshape(-1)
        return values

    exact = torch.stack([model.exact_representation(image) for image in images])
    truth = measure(exact, exact)
    generator = torch.Generator().manual_seed(seed)
    batch_images = [image for image in images for _ in range(copies)]
    samples = []
    for _ in range(BATCHES):
        psi = model.represent(batch_images, generator).features
        samples.append(measure(psi.reshape(len(images), copies, -1).mean(dim=1), psi))
    scores = {}
    for name, value in truth.items():
        stacked = torch.stack([s[name] for s in samples])
        se = stacked.std(dim=0) / BATCHES**0.5
        floor = 1e-6 + 1e-5 * value.abs()  # float32 round-off
        scores[name] = (stacked.mean(dim=0) - value) / torch.sqrt(se**2 + floor**2)
    return scores


# ----------------------------------------------------------------------------- broken on purpose
def broken_middle_stage(broken_weight):
    """``stages.counted_cells`` whose weights are ``broken_weight(drawn, counts, totals)`` at the
    middle stage (the second of the two counted stages of every K = 3 forward pass) only."""
    original = stages.counted_cells
    calls = {"n": 0}

    def counted_cells(probs, counts):
        cells = original(probs, counts)
        calls["n"] += 1
        if calls["n"] % 2 == 0:
            cells.weight = broken_weight(cells.drawn, cells.count.to(cells.drawn.dtype), cells.total.to(cells.drawn.dtype))
        return cells

    return counted_cells


def no_middle_score(drawn, counts, totals):
    """BROKEN: the middle stage's weight k/k_parent without the score correction p/sg(p)."""
    return torch.ones_like(drawn) * (counts / totals)


def middle_counts_not_averaged(drawn, counts, totals):
    """BROKEN: the middle stage's weight k p/sg(p): its draws summed, not averaged over the parent's k."""
    return drawn / drawn.detach() * counts


# ----------------------------------------------------------------------------- unbiased
@pytest.mark.parametrize("control_variate", [False, True])
def test_three_stages_unbiased_in_value_and_every_gradient(control_variate):
    model, groups = kstage_model(THREE, control_variate)
    assert_unbiased(bias_z_scores(model, groups, [structured_image(0)]))


@pytest.mark.parametrize(("params", "per_perplexity"), [(TWO, 1.0), (THREE, 4.0)], ids=["K2", "K3"])
def test_n_from_the_attention_keeps_it_unbiased(params, per_perplexity):
    model, groups = kstage_model({**params, **ADAPTIVE, "n_per_perplexity": per_perplexity})
    images = [structured_image(0), structured_image(3)]
    with torch.no_grad():
        counts = [a.counts.sum().item() for a in model.represent(images, torch.Generator().manual_seed(0)).attention]
    assert counts[0] != counts[1], counts  # ragged: the two images of a batch draw different N
    assert_unbiased(bias_z_scores(model, groups, images))


# ----------------------------------------------------------------------------- mutations caught
@pytest.mark.parametrize(
    ("broken", "group"),
    [(no_middle_score, "stage2"), (middle_counts_not_averaged, "psi")],
)
def test_check_flags_a_broken_middle_stage(monkeypatch, broken, group):
    model, groups = kstage_model(THREE)
    monkeypatch.setattr(stages, "counted_cells", broken_middle_stage(broken))
    assert_flagged(bias_z_scores(model, groups, [structured_image(0)]), group)


def test_check_flags_an_inclusive_prefix_sum_at_the_last_stage(monkeypatch):
    model, groups = kstage_model(THREE)
    monkeypatch.setattr(estimators, "without_replacement_weights", inclusive_mass_weights)
    assert_flagged(bias_z_scores(model, groups, [structured_image(0)]), "psi")
