"""The K-stage Zoom-In (zoomin.models.zoomin_k): K = 2 is Zoom-In, K = 3 streams and keeps its geometry.

* K = 2 with Zoom-In's weights and the same generator gives Zoom-In's outputs, entropy, attention
  and parameter gradients exactly (training path, sampling and top-N, with the control variate,
  the contrastive branch and ``tissue_only``), and at inference too.
* K = 3 at inference (bounded memory, every chunk one view or one sub-tile) equals its whole-batch
  computation: the same draws in the same order, logits within 1e-5.
* Geometry: cells outside the image and (``tissue_only``) without tissue are never drawn at any
  stage; what is read is the stage-1 view, the drawn regions' views and the drawn tiles' views only.
* N from the data: each image's stage-1 counts sum to ``clip(round(c exp(H(a))), n_min, n_max)``.
* A training step's op count does not grow with the batch (no per-image, per-region or per-draw loop).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tests.models.test_batched import count_ops
from tests.models.test_registry import MeanColour, SpyImage, flatten, random_image
from zoomin.errors import ConfigError
from zoomin.image_access import ImageAccess, InMemoryImage
from zoomin.models import build_model
from zoomin.models.adaptive_draws import image_draws, perplexity_draws
from zoomin.models.distributions import entropy

pytestmark = pytest.mark.usefixtures("single_thread")

TOLERANCE = 1e-5
ZOOMIN = {"tile": 16, "subtile": 5, "s1": 0.25, "s2": 0.5, "n": 7}
TWO = {"regions": [16], "scales": [0.25, 0.5], "subtile": 5, "n": 7}
THREE = {"regions": [32, 16], "scales": [0.125, 0.25, 0.5], "subtile": 5, "n": 9}


def images(sizes=((64, 64), (50, 70), (37, 29))) -> list[InMemoryImage]:
    rng = np.random.default_rng(3)
    return [InMemoryImage(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in sizes]


def as_zoomin_k(model: nn.Module, **params) -> nn.Module:
    """A two-stage ``zoomin_k`` with the weights of the ``zoomin`` model ``model``."""
    twin = build_model("zoomin_k", model.classifier.out_features, **{**TWO, **params})
    renamed = {"tile_attention": "stage_attention.0", "subtile_attention": "stage_attention.1"}
    state = {}
    for key, value in model.state_dict().items():
        prefix, _, rest = key.partition(".")
        state[f"{renamed.get(prefix, prefix)}.{rest}"] = value
    twin.load_state_dict(state)
    return twin


class TissueImage(ImageAccess):
    """An in-memory image that knows its tissue: ``tissue`` (bool) at any tile size it is asked for
    must be a multiple of ``unit`` px; given per ``unit`` px tile."""

    def __init__(self, image: InMemoryImage, tissue: np.ndarray, unit: int):
        self.image, self.tissue, self.unit = image, np.asarray(tissue, dtype=bool), unit

    size = property(lambda self: self.image.size)
    channels = property(lambda self: self.image.channels)

    def view(self, scale):
        return self.image.view(scale)

    def region_view(self, top, left, size, scale):
        return self.image.region_view(top, left, size, scale)

    def patches(self, centres, size):
        return self.image.patches(centres, size)

    def tile_mask(self, tile_size):
        factor = tile_size // self.unit
        rows, cols = -(-self.tissue.shape[0] // factor), -(-self.tissue.shape[1] // factor)
        padded = np.zeros((rows * factor, cols * factor), dtype=bool)
        padded[: self.tissue.shape[0], : self.tissue.shape[1]] = self.tissue
        return torch.from_numpy(padded.reshape(rows, factor, cols, factor).any(axis=(1, 3)))


def assert_same_output(first, second, exact: bool = True) -> None:
    close = torch.equal if exact else (lambda x, y: torch.allclose(x, y, atol=TOLERANCE, rtol=0))
    assert close(first.logits.detach(), second.logits.detach())
    assert close(first.entropy.detach(), second.entropy.detach())
    for a, b in zip(first.attention, second.attention):
        assert close(a.stage1.probs.detach(), b.stage1.probs.detach())
        assert torch.equal(a.counts, b.counts)
        assert torch.equal(a.sampled.centres, b.sampled.centres) and torch.equal(a.sampled.cells, b.sampled.cells)
        assert set(a.stage2) == set(b.stage2)
        for cell in a.stage2:
            assert close(a.stage2[cell].probs.detach(), b.stage2[cell].probs.detach())
            assert a.stage2[cell].bounds() == b.stage2[cell].bounds()


# ----------------------------------------------------------------------------- K = 2 is Zoom-In
@pytest.mark.parametrize("sampling", ["sample", "topk"])
@pytest.mark.parametrize("control_variate", [False, True])
def test_two_stages_are_zoomin_in_outputs_and_gradients(sampling, control_variate):
    torch.manual_seed(0)
    zoomin = build_model("zoomin", 3, **ZOOMIN, control_variate=control_variate)
    twin = as_zoomin_k(zoomin, control_variate=control_variate)
    batch = images()
    outputs = []
    for model in (zoomin, twin):
        out = model(batch, torch.Generator().manual_seed(4), sampling)
        (out.logits.square().sum() - out.entropy.sum()).backward()
        outputs.append(out)
    assert_same_output(*outputs)
    grads = {name: p.grad for name, p in twin.named_parameters()}
    for name, parameter in zoomin.named_parameters():
        prefix, _, rest = name.partition(".")
        twin_name = {"tile_attention": "stage_attention.0", "subtile_attention": "stage_attention.1"}.get(prefix, prefix)
        assert torch.equal(parameter.grad, grads[f"{twin_name}.{rest}"]), name


def test_two_stages_are_zoomin_in_the_contrastive_branch_on_tissue_and_at_inference():
    torch.manual_seed(1)
    zoomin = build_model("zoomin", 2, **ZOOMIN, tissue_only=True)
    twin = as_zoomin_k(zoomin, tissue_only=True)
    tissue = np.zeros((4, 5), dtype=bool)
    tissue[1:3, 2:5] = True
    batch = [TissueImage(images()[1], tissue, 16), images()[0]]  # 50 x 70: 4 x 5 tiles
    for contrast in (False, True):
        first, second = (m.represent(batch, torch.Generator().manual_seed(2), contrast=contrast) for m in (zoomin, twin))
        assert torch.equal(first.features, second.features) and torch.equal(first.entropy, second.entropy)
    zoomin.eval(), twin.eval()
    twin.chunk_pixels = 40  # bands, views and sub-tiles one at a time: still Zoom-In's draws
    with torch.no_grad():
        assert_same_output(zoomin(batch, torch.Generator().manual_seed(3)), twin(batch, torch.Generator().manual_seed(3)), exact=False)


# ----------------------------------------------------------------------------- K = 3
def three_stages(**overrides) -> nn.Module:
    torch.manual_seed(0)
    return build_model("zoomin_k", 3, **{**THREE, **overrides})


@pytest.mark.parametrize("sampling", ["sample", "topk"])
def test_three_stages_stream_at_inference_with_the_same_draws(sampling):
    model = three_stages().eval()
    batch = images(((64, 64), (50, 70), (96, 41)))
    with torch.enable_grad():
        whole = model(batch, torch.Generator().manual_seed(5), sampling)
    calls = []
    leaf = model.stage_attention[-1]
    leaf.register_forward_hook(lambda module, inputs, output: calls.append(len(inputs[0])))
    model.chunk_pixels = 64  # every band, every region's view (4 x 4 px) and every sub-tile its own chunk
    with torch.no_grad():
        streamed = model(batch, torch.Generator().manual_seed(5), sampling)
    assert_same_output(whole, streamed, exact=False)
    assert calls and max(calls) == 1  # the last stage's views and draws went one tile at a time
    with torch.no_grad():  # and the contrastive branch
        contrast = model.represent(batch, torch.Generator().manual_seed(6), contrast=True)
    with torch.enable_grad():
        expected = model.represent(batch, torch.Generator().manual_seed(6), contrast=True)
    assert torch.allclose(contrast.features, expected.features.detach(), atol=TOLERANCE, rtol=0)


def test_a_three_stage_training_step_with_ragged_n_runs_as_many_ops_at_any_batch_size():
    """No loop in the forward or backward pass grows with the batch, the draws or the stages' rows."""
    model = three_stages(n_rule="perplexity", n_per_perplexity=3.0, n_min=2, n_max=12, control_variate=True).train()
    rng = np.random.default_rng(0)
    few, many = ([InMemoryImage(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) for _ in range(b)] for b in (2, 16))
    assert count_ops(model, many) <= 1.1 * count_ops(model, few)


def test_three_stages_draw_only_cells_inside_the_image_and_on_tissue():
    model = three_stages(n=40, tissue_only=True)
    tissue = np.zeros((7, 3), dtype=bool)  # 16 px tiles of a 100 x 41 image
    tissue[[0, 3, 6], [2, 0, 1]] = True
    image = TissueImage(InMemoryImage(np.random.default_rng(0).integers(0, 256, (100, 41, 3), dtype=np.uint8)), tissue, 16)
    out = model([image, images()[2]], torch.Generator().manual_seed(0))
    centres = out.attention[0].sampled.centres
    tiles = {(int(y) // 16, int(x) // 16) for y, x in centres.tolist()}
    assert tiles <= {(0, 2), (3, 0), (6, 1)} and len(tiles) == 3  # the 40 draws found all three, nothing else
    regions = out.attention[0].stage1
    assert regions.probs.shape == (4, 2) and torch.equal(regions.probs > 0, torch.tensor([[0, 1], [1, 0], [0, 0], [1, 0]]).bool())
    small = out.attention[1].sampled.centres  # 37 x 29: 2 x 1 regions of 32 px; tiles from y 48 or x 32 lie outside
    assert (small[:, 0] < 48).all() and (small[:, 1] < 32).all()
    for amap in out.attention[0].stage2.values():  # each drawn region's map over its 2 x 2 tiles
        assert amap.cell == (16.0, 16.0) and amap.probs.sum().item() == pytest.approx(1.0, abs=1e-5)


def test_three_stages_read_the_views_of_drawn_regions_only():
    model = three_stages(regions=[64, 16], scales=[0.0625, 0.125, 0.25], n=6)
    spy = SpyImage(random_image(14, 256, 192))
    out = model([spy], torch.Generator().manual_seed(0))
    views = [call for call in spy.calls if call[0] == "view"]
    regions = [call for call in spy.calls if call[0] == "region_view"]
    assert [call[1] for call in views] == [0.0625]
    middle = [call for call in regions if call[3] == 64]
    tiles = [call for call in regions if call[3] == 16]
    assert all(call[4] == 0.125 for call in middle) and all(call[4] == 0.25 for call in tiles)
    assert len(middle) == int((out.attention[0].counts > 0).sum()) == len(out.attention[0].stage2) <= 6
    assert len(tiles) <= 6 and len(tiles) == len({call[1:3] for call in tiles})
    assert spy.largest <= 16 * 12 * 3  # the stage-1 view is the largest thing read
    assert all(call[-1] == 5 for call in spy.calls if call[0] == "patches")


@pytest.mark.parametrize("on_tissue", [False, True])
def test_the_exact_three_stage_representation_is_the_mean_over_every_reachable_subtile(on_tissue):
    """Flat attention and mean-colour features: ``exact_representation`` is the plain mean over the
    reachable regions of the mean over their reachable tiles of the tile's mean sub-tile colour
    (16 px tiles of a 48 x 40 image: 3 x 3 tiles that start inside it, in 2 x 2 regions of 32 px;
    each tile's 8 x 8 sub-tiles). With ``tissue_only`` only tissue tiles are reachable, and a
    region without tissue (the lower left) gets nothing."""
    model = three_stages(tissue_only=on_tissue)
    model.features = MeanColour()
    for net in model.stage_attention:
        flatten(net)
    image = random_image(6, 48, 40)
    steps = torch.arange(8, dtype=torch.float64) * 2 + 1
    tile_means = {}
    for row in range(3):
        for col in range(3):
            centres = torch.cartesian_prod(steps + 16 * row, steps + 16 * col)
            tile_means[row, col] = image.patches(centres, 5).mean(dim=(0, 2, 3))
    regions = {(0, 0): [(0, 0), (0, 1), (1, 0), (1, 1)], (0, 1): [(0, 2), (1, 2)], (1, 0): [(2, 0), (2, 1)], (1, 1): [(2, 2)]}
    if on_tissue:
        tissue = np.zeros((3, 3), dtype=bool)
        tissue[[0, 1, 0, 2], [0, 1, 2, 2]] = True
        image = TissueImage(image, tissue, 16)
        regions = {(0, 0): [(0, 0), (1, 1)], (0, 1): [(0, 2)], (1, 1): [(2, 2)]}
    expected = sum(sum(tile_means[t] for t in tiles) / len(tiles) for tiles in regions.values()) / len(regions)
    with torch.no_grad():
        torch.testing.assert_close(model.exact_representation(image).float(), expected.float(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("entropy_scale", ["image", "entry"])
def test_every_training_loss_takes_three_stages(entropy_scale):
    """The contrastive loss, the mask loss (over the stage-1 map and each drawn region's map of its
    tiles) and both entropy scales train every net of a K = 3 model."""
    from zoomin.training.losses import LossConfig, total_loss

    model = three_stages()
    batch = images(((64, 64), (50, 70)))
    masks = [torch.zeros(64, 64), torch.zeros(50, 70)]
    masks[0][10:20, 40:50] = 1.0
    config = LossConfig(entropy_weight=0.1, entropy_scale=entropy_scale, contrastive=True, mask_weight=10.0)
    generator = torch.Generator().manual_seed(0)
    out = model(batch, generator)
    parts = total_loss(out, torch.tensor([1, 0]), config, model=model, images=batch, generator=generator, masks=masks)
    assert all(torch.isfinite(getattr(parts, name)) for name in ("total", "contrastive", "entropy", "mask"))
    assert parts.contrastive > 0 and parts.mask > 0
    parts.total.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


# ----------------------------------------------------------------------------- N from the data
def test_n_from_the_attention_is_the_clipped_perplexity_per_image():
    model = three_stages(n_rule="perplexity", n_per_perplexity=3.0, n_min=2, n_max=9)
    batch = images(((64, 64), (64, 40), (30, 30)))
    out = model(batch, torch.Generator().manual_seed(0))
    a = [att.stage1.probs.detach().reshape(-1) for att in out.attention]
    wanted = [int(min(9, max(2, round(3.0 * float(torch.exp(entropy(p))))))) for p in a]
    assert image_draws(out) == wanted and len(set(wanted)) > 1  # a ragged batch
    assert wanted[2] == 3  # one region: perplexity 1, 3 draws
    torch.testing.assert_close(perplexity_draws(torch.tensor([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]]), 10.0, 2, 15), torch.tensor([15, 10]))
    fixed = three_stages()
    assert image_draws(fixed(batch, torch.Generator().manual_seed(0))) == [9, 9, 9]
    assert image_draws(build_model("ats", 2)(batch[:1])) == [None]


@pytest.mark.parametrize(
    ("params", "key"),
    [
        ({"regions": [32, 16], "scales": [0.125, 0.25]}, "scales"),
        ({"regions": [32, 12], "scales": [0.125, 0.25, 0.5]}, "regions"),
        ({"regions": [16, 32], "scales": [0.125, 0.25, 0.5]}, "regions"),
        ({"regions": [32, 16], "scales": [0.25, 0.125, 0.5]}, "scales"),
        ({"regions": [32, 16], "scales": [0.01, 0.25, 0.5]}, "scales"),
        ({"regions": [32, 16], "scales": [0.125, 0.25, 1.5]}, "scales"),
        ({"regions": [], "scales": [0.5]}, "regions"),
        ({"subtile": 20}, "subtile"),
        ({"n_min": 5, "n_max": 4}, "n_min"),
        ({"n_rule": "entropy"}, "n_rule"),
    ],
)
def test_bad_stages_are_refused_naming_the_parameter(params, key):
    with pytest.raises(ConfigError) as error:
        build_model("zoomin_k", 2, **{**THREE, **params})
    assert error.value.key == key
