"""Top-K patch selection: the perturbed top-k's gradient against finite differences, the reference's
diagonal backward as an option, exact reading of only the needed patches, hard top-k at inference,
the sigma schedule, learning, meters, bad params."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.models.test_registry import SpyImage
from zoomin.errors import ConfigError, UserError
from zoomin.image_access import InMemoryImage
from zoomin.measure import measure_inference
from zoomin.models import build_model
from zoomin.models import perturbed_topk as ptopk
from zoomin.models.distributions import entropy
from zoomin.models.params import TopKParams
from zoomin.models.topk import normalise_scores

pytestmark = pytest.mark.usefixtures("single_thread")

SMALL = {"scale": 0.5, "patch": 12, "k": 2, "n_samples": 30, "feature": "lenet"}


def random_image(seed: int, height: int, width: int) -> InMemoryImage:
    rng = np.random.default_rng(seed)
    return InMemoryImage(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def small_model(**overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("topk", 2, **{**SMALL, **overrides})


# ---------------------------------------------------------------------------- the operator's gradient
SCORES = torch.tensor([0.1, 0.5, 0.45, 0.9, 0.3], dtype=torch.float64)
K, SIGMA, STEP, DRAWS = 2, 0.5, 0.05, 200_000
Z_BOUND = 4.5  # standard errors allowed per Jacobian entry


def one_hots(scores: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """``f(s + sigma Z)`` of every draw: ``(S, k, n)``."""
    return F.one_hot(ptopk.topk_positions(scores[None] + SIGMA * noise, K), scores.numel()).double()


def gradient_check() -> tuple[float, float]:
    """How far the operator's backward is from the Jacobian of ``F(s) = E[f(s + sigma Z)]``, in units
    of the statistical tolerance (at most 1 passes), and that tolerance's largest entry.

    The operator's Jacobian (its backward, one row per output entry) on ``DRAWS`` draws is compared
    entry by entry with central finite differences of ``F`` under common random numbers (the same
    draws at ``s + h e_i`` and ``s - h e_i``), on independent draws. The tolerance of each entry is
    ``Z_BOUND`` combined standard errors of the two Monte Carlo means (the spread of the analytic
    estimator's terms ``(f - mean f) Z_i / sigma`` and of the per-draw differences), so an entry is
    refused when the two disagree by more than 4.5 standard errors; the finite-difference bias,
    O(h^2 / sigma^2) relative, is far below that.
    """
    n = SCORES.numel()
    noise = torch.randn((DRAWS, n), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    analytic = torch.autograd.functional.jacobian(lambda s: ptopk.perturbed_topk(s, K, SIGMA, noise), SCORES.clone())
    f = one_hots(SCORES, noise)
    centred = f - f.mean(dim=0)
    analytic_se = torch.stack(
        [(centred * noise[:, None, None, i] / SIGMA).std(dim=0) for i in range(n)], dim=-1
    ) / DRAWS**0.5
    other = torch.randn((DRAWS, n), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    differences = []
    for i in range(n):
        step = torch.zeros(n, dtype=torch.float64)
        step[i] = STEP
        differences.append((one_hots(SCORES + step, other) - one_hots(SCORES - step, other)) / (2 * STEP))
    finite = torch.stack([d.mean(dim=0) for d in differences], dim=-1)
    finite_se = torch.stack([d.std(dim=0) for d in differences], dim=-1) / DRAWS**0.5
    tolerance = Z_BOUND * torch.sqrt(analytic_se**2 + finite_se**2)
    # entries both estimators know are zero (the first of two sorted positions is never the last)
    # have zero spread: there, any difference at all fails
    ratio = (analytic - finite).abs() / tolerance.clamp_min(1e-12)
    return float(ratio.max()), float(tolerance.max())


def times_k(grad, positions, noise, sigma):
    """The DPS port's backward: the full Jacobian multiplied by k."""
    return positions.shape[1] * ptopk.full_jacobian_vjp(grad, positions, noise, sigma)


@pytest.mark.slow
def test_backward_is_the_gradient_of_the_expected_perturbed_output(monkeypatch):
    ratio, tolerance = gradient_check()
    assert ratio <= 1.0
    assert tolerance < 0.03  # entries of the Jacobian here are up to ~0.6: the check has teeth
    monkeypatch.setattr(ptopk, "score_gradient", ptopk.diagonal_vjp)  # the reference's: not the gradient of F
    assert gradient_check()[0] > 5.0
    monkeypatch.setattr(ptopk, "score_gradient", times_k)
    assert gradient_check()[0] > 5.0


def uncentred(grad, positions, noise, sigma):
    """The full-Jacobian estimator without the control variate."""
    return grad.gather(1, positions.T).sum(dim=0) @ noise / (noise.shape[0] * sigma)


def test_constant_upstream_gradient_gets_exactly_zero(monkeypatch):
    """The sum of all soft indicators is ``k`` whatever the scores, so its gradient is 0. The control
    variate makes the estimate exactly 0; without it, it is noise of size k / (sigma sqrt(S))."""
    noise = torch.randn((100, 30), generator=torch.Generator().manual_seed(1))

    def gradient() -> torch.Tensor:
        scores = torch.rand(30, generator=torch.Generator().manual_seed(0), requires_grad=True)
        ptopk.perturbed_topk(scores, 5, 0.05, noise).sum().backward()
        return scores.grad

    assert torch.allclose(gradient(), torch.zeros(30), atol=1e-5)
    monkeypatch.setattr(ptopk, "score_gradient", uncentred)
    assert gradient().abs().max() > 10


def test_the_diagonal_backward_is_the_diagonal_of_the_same_draws_jacobian():
    """``backward="diagonal"`` (the reference's training operator) against the Monte Carlo Jacobian
    of the same draws, ``J[i, j, l] = mean_s f_s[i, j] Z_s[l] / sigma``: it is ``sum_i g_il J[i, l, l]``,
    while the exact estimator without its control variate is the whole ``sum_ij g_ij J[i, j, l]``.
    The off-diagonal part it drops is not small here."""
    n, k, sigma, draws = 6, 2, 0.3, 400
    noise = torch.randn((draws, n), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    upstream = torch.randn((k, n), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    scores = torch.tensor([0.1, 0.5, 0.45, 0.9, 0.3, 0.6], dtype=torch.float64, requires_grad=True)
    indicators = ptopk.perturbed_topk(scores, k, sigma, noise, backward="diagonal")
    (indicators * upstream).sum().backward()

    positions = ptopk.topk_positions(scores.detach()[None] + sigma * noise, k)
    f = F.one_hot(positions, n).double()  # (S, k, n)
    jacobian = torch.einsum("sij,sl->ijl", f, noise) / (draws * sigma)
    diagonal = torch.einsum("il,ill->l", upstream, jacobian)
    full = torch.einsum("ij,ijl->l", upstream, jacobian)
    torch.testing.assert_close(scores.grad, diagonal)
    torch.testing.assert_close(uncentred(upstream, positions, noise, sigma), full)
    assert (full - diagonal).abs().max() > 0.1
    assert torch.equal(indicators, ptopk.perturbed_topk(scores.detach(), k, sigma, noise))  # same forward
    with pytest.raises(ValueError, match="backward"):
        ptopk.perturbed_topk(scores, k, sigma, noise, backward="full")


def test_the_model_trains_with_the_backward_its_params_name(monkeypatch):
    calls = []
    diagonal = ptopk.diagonal_vjp

    def spy(grad, positions, noise, sigma):
        calls.append(positions.shape)
        return diagonal(grad, positions, noise, sigma)

    monkeypatch.setattr(ptopk, "diagonal_vjp", spy)
    image = random_image(10, 64, 64)
    small_model(sigma=0.3)([image], torch.Generator().manual_seed(0)).logits.sum().backward()
    assert calls == []  # the default is the exact gradient
    assert TopKParams().backward == "exact"
    model = small_model(sigma=0.3, backward="diagonal")
    model([image], torch.Generator().manual_seed(0)).logits.sum().backward()
    assert len(calls) == 1 and model.scorer.layers[1].weight.grad.abs().sum() > 0


def test_soft_indicators_are_sorted_by_position_and_sum_to_one():
    scores = torch.tensor([0.0, 1.0, 0.2, 0.9, 0.8])
    noise = torch.randn((500, 5), generator=torch.Generator().manual_seed(0))
    indicators = ptopk.perturbed_topk(scores, 2, 1e-3, noise)  # tiny noise: the hard top-2, {1, 3}
    assert torch.allclose(indicators.sum(dim=1), torch.ones(2))
    assert torch.allclose(indicators, F.one_hot(torch.tensor([1, 3]), 5).float())
    wide = ptopk.perturbed_topk(scores, 2, 0.3, noise)
    assert (wide > 0).sum() > 2 and torch.allclose(wide.sum(dim=1), torch.ones(2))


def test_reading_only_the_weighted_candidates_is_exact():
    """Candidates that no indicator weights change neither the mixed patches nor the score gradient."""
    scores = torch.rand(40, generator=torch.Generator().manual_seed(2), requires_grad=True)
    noise = torch.randn((50, 40), generator=torch.Generator().manual_seed(3))
    candidates = torch.rand(40, 3, 6, 6, generator=torch.Generator().manual_seed(4))
    weights = torch.rand(3, 6, 6, generator=torch.Generator().manual_seed(5))

    def loss(read: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        s = scores.detach().clone().requires_grad_(True)
        indicators = ptopk.perturbed_topk(s, 4, 0.1, noise)
        if read is None:
            mixed = torch.einsum("kn,nchw->kchw", indicators, candidates)
        else:
            mixed = torch.einsum("km,mchw->kchw", indicators[:, read], candidates[read])
        value = (torch.tanh(mixed) * weights).sum()
        value.backward()
        return value.detach(), s.grad

    support = (ptopk.perturbed_topk(scores.detach(), 4, 0.1, noise) > 0).any(dim=0).nonzero()[:, 0]
    assert 4 < len(support) < 40
    everything, only = loss(None), loss(support)
    assert torch.allclose(everything[0], only[0]) and torch.allclose(everything[1], only[1], atol=1e-6)
    assert everything[1].abs().sum() > 0


# ---------------------------------------------------------------------------- the model
def test_forward_and_backward_on_images_of_different_sizes():
    model = small_model()
    images = [random_image(0, 64, 64), random_image(1, 80, 48), random_image(2, 40, 120)]
    out = model(images, torch.Generator().manual_seed(0))
    assert out.logits.shape == (3, 2) and out.entropy.shape == (3,)
    out.logits.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert model.scorer.layers[1].weight.grad.abs().sum() > 0  # the scorer learns through the selection
    for image, attention in zip(images, out.attention):
        view = image.view(0.5)
        rows, cols = (view.shape[1] - 8) // 8, (view.shape[2] - 8) // 8
        assert attention.stage1.probs.shape == (rows, cols)
        assert attention.stage1.bounds() == pytest.approx((0, 0, *image.size))
        assert attention.sampled.centres.shape == (2, 2) and attention.sampled.size == 12


def test_ats_traffic_features_are_resnet16_without_its_stride_one_block():
    from zoomin.models.features import build_feature_net

    torch.manual_seed(0)
    ats, resnet = build_feature_net("ats_traffic"), build_feature_net("resnet16")
    assert [block.conv1.stride for block in ats.blocks] == [(2, 2)] * 3 and ats.out_dim == 32
    resnet.blocks = torch.nn.Sequential(*list(resnet.blocks)[1:])  # drop the stride-1 block: the rest must be the same network
    resnet.load_state_dict(ats.state_dict())
    patches = torch.rand(4, 3, 32, 32)
    assert torch.allclose(ats(patches), resnet(patches))
    assert ats(torch.rand(2, 3, 100, 100)).shape == (2, 32)


def test_entropy_is_that_of_the_softmax_of_the_raw_scores():
    model = small_model().eval()
    image = random_image(3, 64, 64)
    raw = model.score_maps([image])[0].reshape(-1)
    assert model([image]).entropy[0].item() == pytest.approx(entropy(torch.softmax(raw, 0)).item(), rel=1e-5)
    assert not torch.allclose(entropy(torch.softmax(raw, 0)), entropy(torch.softmax(normalise_scores(raw), 0)))


def test_inference_reads_exactly_the_hard_top_k_patches():
    model = small_model(k=3).eval()
    spy = SpyImage(random_image(4, 96, 96))
    out = model([spy], torch.Generator().manual_seed(0))
    raw = model.score_maps([spy.image])[0]
    best = torch.topk(raw.reshape(-1), 3).indices.sort().values
    cols = raw.shape[1]
    cell = 96 / raw.shape[0]
    expected = torch.stack([(best // cols + 0.5) * cell, (best % cols + 0.5) * cell], dim=1).double()
    assert torch.allclose(out.attention[0].sampled.centres, expected)
    assert [c for c in spy.calls if c[0] == "patches"] == [("patches", 3, 12)]
    again = model([spy], torch.Generator().manual_seed(9))
    assert torch.equal(out.logits, again.logits)  # no noise at inference


def test_training_reads_the_candidates_the_soft_indicators_weight():
    model = small_model(k=2, n_samples=40, sigma=0.05)
    spy = SpyImage(random_image(5, 96, 96))
    model([spy], torch.Generator().manual_seed(0))
    raw = model.score_maps([spy.image])[0].reshape(-1).detach()
    noise = ptopk.standard_noise(40, raw.numel(), raw, torch.Generator().manual_seed(0))
    support = (ptopk.perturbed_topk(normalise_scores(raw), 2, 0.05, noise) > 0).any(dim=0).sum()
    assert [c for c in spy.calls if c[0] == "patches"] == [("patches", int(support), 12)]
    assert 2 <= support < raw.numel()


def test_same_seed_same_draws_and_sampling_topk_is_hard_in_training():
    model = small_model(sigma=0.3)
    images = [random_image(6, 64, 64), random_image(7, 64, 64)]
    first = model(images, torch.Generator().manual_seed(1)).logits
    again = model(images, torch.Generator().manual_seed(1)).logits
    other = model(images, torch.Generator().manual_seed(2)).logits
    assert torch.equal(first, again) and not torch.equal(first, other)
    hard = model(images, torch.Generator().manual_seed(1), sampling="topk").logits
    assert torch.equal(hard, model(images, torch.Generator().manual_seed(2), sampling="topk").logits)


def test_sigma_decays_linearly_with_the_training_steps_and_then_selection_is_hard():
    model = small_model(sigma=0.2, sigma_decay_steps=4)
    image = random_image(8, 64, 64)
    sigmas = []
    for _ in range(5):
        sigmas.append(model.current_sigma())
        model([image], torch.Generator().manual_seed(0))
    assert sigmas == pytest.approx([0.2, 0.15, 0.1, 0.05, 0.0])
    assert int(model.steps) == 5 and "steps" in model.state_dict()
    generator = torch.Generator().manual_seed(0)
    state = generator.get_state()
    model([image], generator)  # sigma 0: the hard top-k, no noise drawn
    assert torch.equal(generator.get_state(), state)
    model.eval()
    model([image])
    measure_inference(model, image, "cpu", seed=0, repeats=1, warmup=0)
    assert int(model.steps) == 6  # inference and measurement do not advance the schedule
    assert build_model("topk", 2, **SMALL).current_sigma() == TopKParams().sigma  # no decay by default


def test_a_view_with_fewer_cells_than_k_is_refused_with_what_to_change():
    model = small_model(k=5)
    with pytest.raises(UserError, match=r"image 1 .* 20x32 px.*1x3 candidate patches, fewer than k = 5.*`scale`"):
        model([random_image(0, 64, 64), random_image(1, 40, 64)])


def square_images(count: int, seed: int, side: int = 96, square: int = 6) -> tuple[list[InMemoryImage], torch.Tensor]:
    """Grey noise; label 1 images have one bright square at a random place."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for i in range(count):
        pixels = rng.integers(60, 120, (side, side, 3), dtype=np.uint8)
        label = i % 2
        if label:
            y, x = rng.integers(0, side - square, 2)
            pixels[y : y + square, x : x + square] = 250
        images.append(InMemoryImage(pixels))
        labels.append(label)
    return images, torch.tensor(labels)


@pytest.mark.slow
def test_it_learns_to_select_and_classify_a_tiny_separable_problem():
    """2 of 25 candidate patches: after training the classifier is right and the hard top-2 hold
    the square in most positive test images (12-16 of 16 over training seeds and thread counts)."""
    model = small_model(patch=24, k=2, n_samples=50, sigma=0.05)
    images, labels = square_images(16, seed=0)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(25):
        out = model(images, generator)
        loss = F.cross_entropy(out.logits, labels) - 0.01 * out.entropy.mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    test_images, test_labels = square_images(32, seed=1)
    with torch.no_grad():
        out = model(test_images)
    assert (out.logits.argmax(1) == test_labels).float().mean().item() >= 0.9
    found = 0
    for i in range(1, 32, 2):
        y, x = np.argwhere(test_images[i].pixels[:, :, 0] == 250).mean(axis=0)
        centres = out.attention[i].sampled.centres
        found += int(((centres[:, 0] - y).abs() <= 12).logical_and((centres[:, 1] - x).abs() <= 12).any())
    assert found >= 12  # of 16 positives


def test_cost_meters_run():
    model = small_model().train()
    result = measure_inference(model, random_image(9, 128, 128), "cpu", seed=0, repeats=1, warmup=0)
    assert model.training
    assert result["gflops"] > 0 and result["peak_memory_mb"] > result["parameters_mb"] > 0 and result["time_ms"] > 0


@pytest.mark.parametrize(
    "params, key",
    [
        ({"k": 0}, "k"),
        ({"patch": 0}, "patch"),
        ({"n_samples": 1}, "n_samples"),
        ({"sigma": 0}, "sigma"),
        ({"sigma_decay_steps": 0}, "sigma_decay_steps"),
        ({"feature": "vgg"}, "feature"),
        ({"hidden": 0}, "hidden"),
        ({"backward": "full"}, "backward"),
        ({"scale": 0}, "scale"),
        ({"downscale": 3}, "downscale"),
    ],
)
def test_bad_parameters_name_the_key(params, key):
    with pytest.raises(ConfigError) as error:
        build_model("topk", 2, **params)
    assert error.value.key == key and key in str(error.value)
