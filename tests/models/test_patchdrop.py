"""PatchDrop: the grid, the greedy mask at inference, what is read, the REINFORCE terms, and learning
a cue its policy cannot see -- which a policy gradient of the wrong sign does not."""

from __future__ import annotations

import pytest
import torch

from tests.models.test_registry import SpyImage, random_image
from tests.training.learning_problem import BLIND_SCALE, accuracy, checkerboard_images, train_steps
from zoomin.errors import ConfigError
from zoomin.measure import measure_inference
from zoomin.models import build_model
from zoomin.models.output import ModelOutput
from zoomin.models.patchdrop import PolicyStep, grid_edges, policy_loss, rewards, square_reads

pytestmark = pytest.mark.usefixtures("single_thread")

SMALL = {"grid": 4, "policy_scale": 0.25, "width": 8, "policy_start": 0}


def model_with_keep(keep: list[int], grid: int = 4, **params) -> torch.nn.Module:
    """A PatchDrop whose policy keeps exactly the cells ``keep`` greedily (p' far from 1/2)."""
    torch.manual_seed(0)
    model = build_model("patchdrop", 2, **{**SMALL, "grid": grid, **params})
    bias = torch.full((grid * grid,), -8.0)
    bias[keep] = 8.0
    with torch.no_grad():
        model.policy.cell_bias.copy_(bias.reshape(grid, grid))
    return model


def test_grid_cells_tile_the_image_and_square_reads_stay_inside_their_cell():
    assert grid_edges(70, 4) == [0, 18, 35, 52, 70] and grid_edges(3, 4) == [0, 1, 2, 2, 3]
    for top, bottom, left, right in [(0, 18, 0, 12), (18, 35, 12, 25), (0, 5, 0, 5), (3, 4, 0, 9)]:
        covered = torch.zeros(80, 80, dtype=torch.int)
        for y, x, side in square_reads(top, bottom, left, right):
            assert top <= y and y + side <= bottom and left <= x and x + side <= right
            covered[y : y + side, x : x + side] = 1
        assert covered.sum() == (bottom - top) * (right - left)
    assert square_reads(2, 2, 0, 5) == []


@pytest.mark.parametrize("size", [(64, 64), (70, 50), (33, 90)])
def test_keeping_every_cell_shows_the_classifier_the_whole_image(size):
    model = model_with_keep(list(range(16))).eval()
    image = random_image(1, *size)
    logits = model.classify([image], [torch.ones(1, 16)])[0]
    with torch.no_grad():
        expected = model.classifier(image.view(1.0)[None])
    assert torch.allclose(logits, expected, atol=1e-5)


def test_forward_backward_and_attention_on_images_of_different_sizes():
    model = model_with_keep([0, 5, 10])
    images = [random_image(0, 64, 64), random_image(1, 70, 50), random_image(2, 48, 80)]
    out = model(images, torch.Generator().manual_seed(0))
    assert out.logits.shape == (3, 2) and torch.equal(out.entropy, torch.zeros(3))
    loss = out.logits.sum() + model.auxiliary_loss(out, torch.tensor([0, 1, 0]))
    loss.backward()
    assert model.policy.cell_bias.grad is not None and model.classifier.classifier.weight.grad.abs().sum() > 0
    for image, attention, sampled in zip(images, out.attention, out.extras.sampled):
        assert attention.stage1.probs.shape == (4, 4)
        assert attention.stage1.bounds() == pytest.approx((0, 0, *image.size))
        assert attention.stage1.probs.sum().item() == pytest.approx(1.0, abs=1e-5)
        assert attention.sampled.cells.tolist() == sampled.nonzero()[:, 0].tolist()


def test_inference_uses_the_greedy_mask_whatever_the_generator():
    keep = [1, 6, 11]
    model = model_with_keep(keep).eval()
    images = [random_image(3, 64, 64), random_image(4, 70, 50)]
    with torch.no_grad():
        first = model(images, torch.Generator().manual_seed(0))
        second = model(images, torch.Generator().manual_seed(99))
        greedy = model.classify(images, [torch.zeros(2, 16).index_fill_(1, torch.tensor(keep), 1.0)])[0]
    assert torch.equal(first.logits, second.logits) and torch.allclose(first.logits, greedy)
    assert all(a.sampled.cells.tolist() == keep for a in first.attention)
    assert first.extras is None and model.auxiliary_loss(first, torch.tensor([0, 1])) is None


def test_training_samples_actions_with_the_generator():
    model = model_with_keep([0])
    with torch.no_grad():
        model.policy.cell_bias.zero_()  # p' = 1/2 everywhere
    images = [random_image(5, 64, 64)]
    draws = [model(images, torch.Generator().manual_seed(s)).extras.sampled for s in (0, 0, 1)]
    assert torch.equal(draws[0], draws[1]) and not torch.equal(draws[0], draws[2])
    assert torch.equal(model(images, torch.Generator().manual_seed(0)).extras.greedy, torch.ones(1, 16))


def _cells_read(spy: SpyImage, grid: int) -> set[int]:
    rows, cols = grid_edges(spy.size[0], grid), grid_edges(spy.size[1], grid)
    cells = set()
    for call in spy.calls:
        if call[0] == "region_view":
            _, top, left, side, _ = call
            row = max(r for r in range(grid) if rows[r] <= top)
            col = max(c for c in range(grid) if cols[c] <= left)
            assert top + side <= rows[row + 1] and left + side <= cols[col + 1], "a read crossed a cell edge"
            cells.add(row * grid + col)
    return cells


def test_dropped_cells_are_never_read_at_full_resolution():
    keep = [0, 7, 9, 14]
    model = model_with_keep(keep).eval()
    spy = SpyImage(random_image(6, 256, 192))
    with torch.no_grad():
        model([spy])
    assert _cells_read(spy, 4) == set(keep)
    assert all(call[-1] == 1.0 for call in spy.calls if call[0] == "region_view")
    assert {call[1] for call in spy.calls if call[0] == "view"} == {0.25}
    assert not any(call[0] == "patches" for call in spy.calls)
    assert spy.largest < 256 * 192 * 3  # no single read holds the image at full resolution

    model.train()  # training reads the sampled cells and the greedy ones (the baseline), nothing else
    spy = SpyImage(random_image(7, 256, 192))
    out = model([spy], torch.Generator().manual_seed(3))
    used = (out.extras.sampled + out.extras.greedy)[0].nonzero()[:, 0].tolist()
    assert _cells_read(spy, 4) == set(used)


def test_classifier_scale_reads_the_kept_cells_at_that_scale():
    model = model_with_keep([5], classifier_scale=0.5).eval()
    spy = SpyImage(random_image(8, 128, 128))
    with torch.no_grad():
        model([spy])
    reads = [call for call in spy.calls if call[0] == "region_view"]
    assert reads == [("region_view", 32, 32, 32, 0.5)]


def test_a_right_prediction_with_fewer_cells_earns_more_and_a_wrong_one_the_penalty():
    logits = torch.tensor([[2.0, 0.0], [2.0, 0.0], [0.0, 2.0]])
    labels = torch.tensor([0, 0, 0])
    actions = torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    reward = rewards(logits, actions, labels, penalty=-10.0)
    assert reward.tolist() == pytest.approx([1 - 0.5**2, 1 - 0.25**2, -10.0])
    assert reward[1] > reward[0] > reward[2]


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_the_policy_gradient_follows_the_sign_of_the_advantage(sign):
    model = model_with_keep([0])
    with torch.no_grad():
        model.policy.cell_bias.zero_()
    images = [random_image(9, 64, 64), random_image(10, 64, 64)]
    out = model(images, torch.Generator().manual_seed(1))
    sampled = out.extras.sampled

    def log_prob() -> torch.Tensor:
        p = model.keep_probs(images)
        return (sampled * p.log() + (1 - sampled) * (1 - p).log()).sum()

    before = log_prob().item()
    optimizer = torch.optim.SGD(model.policy.parameters(), lr=0.01)
    policy_loss(torch.full((2,), sign), out.extras.log_prob).backward()
    optimizer.step()
    assert (log_prob().item() - before) * sign > 0


def test_auxiliary_loss_prefers_a_right_sampled_action_over_a_wrong_greedy_one():
    """Sampled: right with 1 cell; greedy: wrong. Advantage > 0, so descending the loss raises
    log pi(sampled); with the roles swapped it lowers it."""
    model = model_with_keep([0])
    labels = torch.tensor([1])
    log_prob = torch.tensor([-3.0], requires_grad=True)
    right, wrong = torch.tensor([[0.0, 5.0]]), torch.tensor([[5.0, 0.0]])
    few, many = torch.eye(16)[:1], torch.ones(1, 16)
    out = ModelOutput(right, torch.zeros(1), extras=PolicyStep(few, many, wrong, log_prob))
    model.auxiliary_loss(out, labels).backward()
    assert log_prob.grad.item() < 0  # gradient descent raises log pi(sampled)
    log_prob.grad = None
    out = ModelOutput(wrong, torch.zeros(1), extras=PolicyStep(few, many, right, log_prob))
    model.auxiliary_loss(out, labels).backward()
    assert log_prob.grad.item() > 0


def test_policy_start_holds_the_policy_loss_back_for_that_many_steps():
    model = model_with_keep([0], policy_start=2)
    with torch.no_grad():
        model.policy.cell_bias.zero_()
    images = [random_image(11, 64, 64), random_image(12, 64, 64)]
    labels = torch.tensor([0, 1])
    losses = []
    for seed in range(4):
        out = model(images, torch.Generator().manual_seed(seed))
        # the greedy prediction is wrong and the sampled one right: the advantage is never zero
        out.extras.greedy_logits = torch.tensor([[0.0, 5.0], [5.0, 0.0]])
        out.logits = torch.tensor([[5.0, 0.0], [0.0, 5.0]])
        losses.append(model.auxiliary_loss(out, labels))
    assert [float(loss.detach()) == 0.0 for loss in losses] == [True, True, False, False]
    assert int(model.state_dict()["policy_steps"]) == 4  # saved with the weights: a resumed run keeps counting


def learning_run(model: torch.nn.Module) -> float:
    """Held-out accuracy after 150 steps on 64 px noise in which positives hold a 16 px checkerboard of
    2 px blocks: invisible in the policy's 1/4 view (tests/training/learning_problem.py), plain to the
    classifier, which reads the kept cells at full resolution. The policy loss starts at step 100."""
    images, labels = checkerboard_images(64, seed=0, cue=16)
    test_images, test_labels = checkerboard_images(128, seed=1, cue=16)
    assert accuracy(model, test_images, test_labels) <= 0.6
    train_steps(model, images, labels, steps=150, lr=3e-3)
    return accuracy(model, test_images, test_labels)


def learning_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("patchdrop", 2, **{**SMALL, "policy_scale": BLIND_SCALE, "policy_start": 100})


def kept_fraction(model: torch.nn.Module) -> float:
    model.eval()
    with torch.no_grad():
        return float((model.keep_probs(checkerboard_images(16, seed=2, cue=16)[0]) >= 0.5).float().mean())


@pytest.mark.slow
def test_learns_a_cue_its_policy_cannot_see():
    """The policy cannot tell where the cue is, so the rewards teach it to keep the cells (dropping
    the cue's cell costs the penalty) and the classifier learns the cue at full resolution.
    Held-out accuracy 0.96-1.0 for initialisation seeds 0-2; about 9 s."""
    model = learning_model()
    assert learning_run(model) >= 0.85
    assert kept_fraction(model) >= 0.75


@pytest.mark.slow
def test_a_policy_gradient_of_the_wrong_sign_drops_the_cells_and_stays_at_chance(monkeypatch):
    """The broken variant: REINFORCE with the advantage's sign flipped reinforces the actions that
    were wrong, the policy learns to drop every cell, and the classifier sees nothing."""
    import zoomin.models.patchdrop as patchdrop

    right = patchdrop.policy_loss
    monkeypatch.setattr(patchdrop, "policy_loss", lambda advantage, log_prob: -right(advantage, log_prob))
    model = learning_model()
    assert learning_run(model) <= 0.65
    assert kept_fraction(model) <= 0.25


def test_inference_cost_meters_run():
    model = build_model("patchdrop", 2, **SMALL)
    cost = measure_inference(model, random_image(13, 96, 96), "cpu", seed=0, repeats=1, warmup=0)
    assert cost["gflops"] > 0 and cost["peak_memory_mb"] > cost["parameters_mb"] > 0 and cost["time_ms"] > 0
    assert model.training  # restored


@pytest.mark.parametrize(
    "params, key",
    [
        ({"grid": 0}, "grid"),
        ({"alpha": 0.5}, "alpha"),
        ({"alpha": 1.2}, "alpha"),
        ({"penalty": 1.0}, "penalty"),
        ({"policy_scale": 0.0}, "policy_scale"),
        ({"classifier_scale": 1.5}, "classifier_scale"),
        ({"policy_start": -1}, "policy_start"),
        ({"width": 2.5}, "width"),
    ],
)
def test_bad_parameters_name_the_key(params, key):
    with pytest.raises(ConfigError) as error:
        build_model("patchdrop", 2, **params)
    assert error.value.key == key
