"""Model construction, output shapes, the meters on every model type, the exact and contrastive
representations, determinism and image access of every model type."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from zoomin.errors import ConfigError, UserError
from zoomin.image_access import ImageAccess, InMemoryImage
from zoomin.measure import MB, measure_inference
from zoomin.models import MODEL_TYPES, build_model
from zoomin.models.output import Attention, ModelOutput

pytestmark = pytest.mark.usefixtures("single_thread")  # tiny nets: one thread is faster

SMALL = {
    "zoomin": {"tile": 16, "subtile": 5, "s1": 0.25, "s2": 0.5, "n": 4},
    "zoomin_k": {"regions": [32, 16], "scales": [0.125, 0.25, 0.5], "subtile": 5, "n": 4},  # K = 3
    "ats": {"scale": 0.25, "patch": 5, "n": 4},
    "cnn": {"scale": 0.5},
    "efficientnet_b0": {"scale": 0.5},
    "patchdrop": {"grid": 4, "policy_scale": 0.25, "width": 8, "policy_start": 0},
    "racnn": {"scale": 0.5, "crop_size": 32, "width": 8},
    "bagnet": {"width": 4, "receptive_field": 17},
    "topk": {"scale": 0.5, "patch": 8, "k": 3, "n_samples": 20, "feature": "lenet"},
    "mil": {"patch": 16, "width": 4, "chunk": 5},
    "ips": {"patch": 16, "width": 4, "memory": 3, "chunk": 5, "heads": 2},
    "clam_sb": {"patch": 16, "width": 4, "hidden": 8, "k_sample": 2},
    "mrmil": {"region": 32, "low_scale": 0.25, "patch": 16, "top": 2, "width": 4, "hidden": 8, "chunk": 5},
    "streaming_cnn": {"scale": 0.5, "tile": 16, "width": 4, "blocks": 2},
}
ATTENTION_MODELS = ("zoomin", "ats")  # attention SAMPLING: seeded draws, contrastive branch, exact representation


def random_image(seed: int, height: int = 64, width: int = 64) -> InMemoryImage:
    rng = np.random.default_rng(seed)
    return InMemoryImage(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def small_model(model_type: str, **overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(model_type, 3, **{**SMALL[model_type], **overrides})


class SpyImage(ImageAccess):
    """Wraps an ImageAccess and records every request and the largest tensor handed out."""

    def __init__(self, image):
        self.image = image
        self.calls: list[tuple] = []
        self.centres: list[torch.Tensor] = []  # of every patches() call, in order
        self.largest = 0

    @property
    def size(self):
        return self.image.size

    @property
    def channels(self):
        return self.image.channels

    def _record(self, call: tuple, tensor: torch.Tensor) -> torch.Tensor:
        self.calls.append(call)
        self.largest = max(self.largest, tensor.numel())
        return tensor

    def view(self, scale):
        return self._record(("view", scale), self.image.view(scale))

    def region_view(self, top, left, size, scale):
        region = self.image.region_view(top, left, size, scale)
        return self._record(("region_view", top, left, size, scale), region)

    def patches(self, centres, size):
        self.centres.append(torch.as_tensor(centres).double())
        return self._record(("patches", len(centres), size), self.image.patches(centres, size))

    @property
    def source(self):
        return self.image.source


# ---------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_output_shapes_for_images_of_different_sizes(model_type):
    model = small_model(model_type)
    images = [random_image(0, 64, 64), random_image(1, 70, 50), random_image(2, 64, 64)]
    out = model(images, torch.Generator().manual_seed(0))
    assert isinstance(out, ModelOutput)
    assert out.logits.shape == (3, 3)
    assert out.entropy.shape == (3,)
    has_attention = MODEL_TYPES[model_type].attention != "none"
    assert len(out.attention) == (3 if has_attention else 0)
    assert torch.isfinite(out.logits).all()
    own_terms = model.auxiliary_loss(out, torch.tensor([0, 1, 2]))  # e.g. PatchDrop's policy is trained only by it
    (out.logits.sum() + (0 if own_terms is None else own_terms)).backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    if not has_attention:
        assert torch.equal(out.entropy, torch.zeros(3))
        assert out.attention == []
    if model_type not in ATTENTION_MODELS and not MODEL_TYPES[model_type].contrastive:
        assert model.contrastive_logits(images, torch.Generator()) is None


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_every_model_is_built_with_channels_last_convolutions(model_type):
    kernels = [p for p in small_model(model_type).parameters() if p.dim() == 4]
    assert kernels and all(p.is_contiguous(memory_format=torch.channels_last) for p in kernels)
    assert any(not p.is_contiguous() for p in kernels)  # some kernel is more than 1x1 over one channel


def storage_bytes(module: nn.Module) -> int:
    """Bytes of a module's parameters and buffers, each storage once (counted here, not by the meter)."""
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in [*module.parameters(), *module.buffers()]}
    return sum(storages.values())


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_the_evaluation_meters_measure_every_model_type(model_type):
    """What the evaluation records for each model type (inference mode, the run's seed): the MACs of
    the model's own inference pass with that seed, counted again here outside the meter; FLOPs twice
    the MACs; the parameters' bytes; a peak that holds its largest single allocation; and more MACs
    on an image 4 times larger (every model reads more of it: a view, a grid or a bag that grows)."""
    model = small_model(model_type)
    image = random_image(4, 64, 64)
    cost = measure_inference(model, image, "cpu", seed=3, repeats=1, warmup=0)
    model.eval().clear_caches()
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model([image], generator=torch.Generator().manual_seed(3), sampling="sample")
    assert cost["gmacs"] == pytest.approx(counter.get_total_flops() / 2e9) and cost["gmacs"] > 0
    assert cost["gflops"] == pytest.approx(2 * cost["gmacs"])
    assert cost["parameters_mb"] == pytest.approx(storage_bytes(model) / MB) and cost["input_mb"] == 0.0
    assert cost["forward_peak_mb"] >= cost["largest_allocation_mb"] > 0
    assert cost["peak_memory_mb"] == pytest.approx(cost["parameters_mb"] + cost["forward_peak_mb"])
    assert cost["time_ms"] > 0
    larger = measure_inference(model, random_image(5, 128, 128), "cpu", seed=3, repeats=1, warmup=0, timed=False)
    assert larger["gmacs"] > cost["gmacs"]


def test_zoomin_attention_is_consistent():
    model = small_model("zoomin")
    image = random_image(3, 70, 50)
    attention = model([image], torch.Generator().manual_seed(1)).attention[0].detached()
    rows, cols = math.ceil(70 / 16), math.ceil(50 / 16)
    assert attention.stage1.probs.shape == (rows, cols)
    assert attention.stage1.cell == (16, 16) and attention.stage1.origin == (0.0, 0.0)
    assert attention.stage1.probs.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert attention.counts.sum().item() == 4
    drawn = set(attention.counts.reshape(-1).nonzero()[:, 0].tolist())
    assert set(attention.stage2) == drawn
    for tile, b in attention.stage2.items():
        assert b.probs.shape == (8, 8) and b.probs.sum().item() == pytest.approx(1.0, abs=1e-5)
        assert b.bounds() == (tile // cols * 16, tile % cols * 16, 16.0, 16.0)  # b_t lies over its tile
    assert attention.sampled.size == 5
    centres, tiles = attention.sampled.centres, attention.sampled.cells
    assert centres.shape[1] == 2 and len(centres) == len(tiles) <= 4
    rows_of, cols_of = tiles // cols, tiles % cols
    assert ((centres[:, 0] > rows_of * 16) & (centres[:, 0] < (rows_of + 1) * 16)).all()
    assert ((centres[:, 1] > cols_of * 16) & (centres[:, 1] < (cols_of + 1) * 16)).all()
    # sub-tile centres sit on the half-pixel grid of the stage-2 view (T / h2 = 2 px apart)
    assert torch.allclose((centres - 1.0) % 2.0, torch.zeros_like(centres))


def test_ats_attention_is_consistent():
    model = small_model("ats")
    attention = model([random_image(4, 70, 50)], torch.Generator().manual_seed(1)).attention[0].detached()
    h, w = round(70 * 0.25), round(50 * 0.25)
    assert attention.stage1.probs.shape == (h, w)
    assert attention.stage1.bounds() == pytest.approx((0, 0, 70, 50))  # the map covers the image
    assert attention.stage2 == {} and attention.counts is None
    assert attention.sampled.centres.shape == (4, 2)
    assert len(set(map(tuple, attention.sampled.centres.tolist()))) == 4  # without replacement: distinct
    assert attention.sampled.size == 5 and model.scale == 0.25


def test_tile_logits_average_the_attention_map_over_each_padded_tile():
    model = small_model("zoomin")
    image = random_image(5, 70, 50)  # not a multiple of the tile: the grid is zero-padded
    logits = model.tile_logits([image])[0]
    view = image.view(0.25)
    padded = F.pad(view, (0, 4 * 4 - view.shape[2], 0, 5 * 4 - view.shape[1]))
    with torch.no_grad():
        attention = model.tile_attention(padded[None])[0]
    expected = attention.reshape(5, 4, 4, 4).mean(dim=(1, 3))
    assert logits.shape == (5, 4)
    assert torch.allclose(logits, expected, atol=1e-6)


class MeanColour(nn.Module):
    """A feature net whose features are each patch's mean colour (3 values)."""

    out_dim = 3

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        return patches.float().mean(dim=(2, 3))


def flatten(net: nn.Module) -> None:
    """Zero the last convolution of an attention net: equal logits, flat attention."""
    last = [m for m in net.modules() if isinstance(m, nn.Conv2d)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()


@pytest.mark.parametrize("model_type", ATTENTION_MODELS)
def test_the_exact_representation_is_the_attention_weighted_mean_over_every_position(model_type):
    """With flat attention and mean-colour features, ``exact_representation`` must be the plain mean
    of the mean colours of the patches centred on every position, computed here from the pixels
    with the centres of docs/method.md: Zoom-In's 16 tiles of 16 px, each an 8 x 8 stage-2 view
    (centres 2 px apart from 1 px in); ATS's 16 x 16 view of a 64 px image (4 px apart from 2 px in)."""
    model = small_model(model_type)
    model.features = MeanColour()
    for net in (model.tile_attention, model.subtile_attention) if model_type == "zoomin" else (model.attention,):
        flatten(net)
    image = random_image(6, 64, 64)
    if model_type == "zoomin":
        steps = torch.arange(32, dtype=torch.float64) * 2 + 1  # over the 4 tiles: 8 positions each
        size = 5
    else:
        steps = torch.arange(16, dtype=torch.float64) * 4 + 2
        size = 5
    centres = torch.cartesian_prod(steps, steps)
    expected = image.patches(centres, size).mean(dim=(0, 2, 3))
    with torch.no_grad():
        torch.testing.assert_close(model.exact_representation(image).float(), expected, rtol=1e-5, atol=1e-6)
    maps = model.attention_maps(image)
    assert isinstance(maps, Attention) and maps.sampled is None and not maps.stage1.probs.requires_grad


@pytest.mark.parametrize("model_type", ATTENTION_MODELS)
def test_the_contrastive_branch_reads_where_the_attention_is_low(model_type):
    """All the attention on the first tile (Zoom-In) or the first view position (ATS): the forward
    pass reads there, the contrastive pass (``normalise(1 - a)``) never does."""
    model = small_model(model_type)
    if model_type == "zoomin":
        model._batch_tile_logits = lambda images, grids, shape: torch.tensor([60.0] + [0.0] * 15).reshape(1, 4, 4)
        inside = 16.0  # the first tile: [0, 16) px
    else:
        model._batch_logits = lambda images, shapes, shape: torch.tensor([60.0] + [0.0] * 255).reshape(1, 16, 16)
        inside = 4.0  # the first position's centre is (2, 2); the next are 4 px further
    spy = SpyImage(random_image(7, 64, 64))
    model([spy], torch.Generator().manual_seed(0))
    forward = torch.cat(spy.centres)
    spy.centres.clear()
    logits = model.contrastive_logits([spy], torch.Generator().manual_seed(0))
    contrast = torch.cat(spy.centres)
    assert logits.shape == (1, 3)

    def in_first(centres: torch.Tensor) -> torch.Tensor:
        return (centres[:, 0] < inside) & (centres[:, 1] < inside)

    assert in_first(forward).any() and not in_first(contrast).any()
    if model_type == "zoomin":
        assert in_first(forward).all()  # every tile draw lands on the first tile


def test_resnet16_feature_net_is_the_papers_table_6():
    """docs/method.md §11.1: conv3x3 3->32, four pre-activation blocks of 32 channels with strides 1,
    2, 2, 2 (1x1 projections where strided), BatchNorm + ReLU, global average pooling: 32 features,
    nine 3x3 convolutions, an 8x smaller map before pooling; and Zoom-In runs it on its sub-tiles."""
    from zoomin.models.features import PreActBlock, ResNet16Features

    net = ResNet16Features().eval()
    blocks = [m for m in net.modules() if isinstance(m, PreActBlock)]
    assert [b.conv1.stride[0] for b in blocks] == [1, 2, 2, 2]
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert sum(c.kernel_size == (3, 3) for c in convs) == 9 and sum(c.kernel_size == (1, 1) for c in convs) == 3
    assert {c.out_channels for c in convs} == {32}
    maps = []
    net.head.register_forward_hook(lambda module, inputs, output: maps.append(output.shape))
    with torch.no_grad():
        features = net(torch.rand(2, 3, 40, 40))
    assert features.shape == (2, 32) and maps == [torch.Size([2, 32, 5, 5])]
    model = small_model("zoomin", feature="resnet16", attention_activation="relu")
    out = model([random_image(8)], torch.Generator().manual_seed(0))
    assert isinstance(model.features, ResNet16Features) and model.features.out_dim == 32
    assert out.logits.shape == (1, 3) and torch.isfinite(out.logits).all()


def test_lenet_feature_variants_differ_only_in_the_normalisation():
    from zoomin.models.features import build_feature_net

    torch.manual_seed(0)
    normalised = build_feature_net("lenet")
    raw = build_feature_net("lenet_unnormalised")
    raw.load_state_dict(normalised.state_dict())
    patches = torch.rand(5, 3, 27, 27)
    unit, plain = normalised(patches), raw(patches)
    assert torch.allclose(unit.norm(dim=1), torch.ones(5))
    assert not torch.allclose(plain.norm(dim=1), torch.ones(5))
    assert torch.allclose(F.normalize(plain, dim=1), unit, atol=1e-6)
    model = build_model("zoomin", 2, feature="lenet_unnormalised")
    assert model.features.normalise is False


def test_lenet_and_attention_nets_see_standardised_pixels():
    """Grey 0.5 is the zero input: a plain conv then outputs its bias only."""
    from zoomin.models.attention import AttentionNet
    from zoomin.models.standardise import Standardise

    assert torch.equal(Standardise()(torch.tensor([0.0, 0.5, 1.0])), torch.tensor([-2.0, 0.0, 2.0]))
    net = AttentionNet()
    first_conv = net.layers[1]
    grey = torch.full((1, 3, 6, 6), 0.5)
    assert torch.allclose(first_conv(net.layers[0](grey))[0, :, 3, 3], first_conv.bias, atol=1e-6)


# ---------------------------------------------------------------------------- determinism
@pytest.mark.parametrize("model_type", ATTENTION_MODELS)
def test_same_seed_same_result_different_seed_different_samples(model_type):
    model = small_model(model_type)
    images = [random_image(9), random_image(10)]
    first = model(images, torch.Generator().manual_seed(42))
    again = model(images, torch.Generator().manual_seed(42))
    other = model(images, torch.Generator().manual_seed(43))
    assert torch.equal(first.logits, again.logits)
    def centres(out):
        return [a.sampled.centres for a in out.attention]

    assert all(torch.equal(a, b) for a, b in zip(centres(first), centres(again)))
    assert any(not torch.equal(a, b) for a, b in zip(centres(first), centres(other)))


@pytest.mark.parametrize("model_type", ATTENTION_MODELS)
def test_topk_inference_is_deterministic(model_type):
    model = small_model(model_type).eval()
    images = [random_image(11), random_image(12)]
    with torch.no_grad():
        first = model(images, sampling="topk")
        second = model(images, torch.Generator().manual_seed(5), sampling="topk")
    assert torch.equal(first.logits, second.logits)


def test_topk_allocates_draws_by_largest_remainder():
    model = small_model("zoomin", n=5)
    attention = model([random_image(13)], sampling="topk").attention[0].detached()
    a, counts = attention.stage1.probs.reshape(-1), attention.counts.reshape(-1)
    assert counts.sum().item() == 5
    assert (counts.double() - 5 * a.double()).abs().max() < 1.0
    # flat attention over 16 tiles: the 5 draws go to the 5 tiles of highest attention
    assert set(counts.nonzero()[:, 0].tolist()) == set(torch.topk(a, 5).indices.tolist())


def test_unknown_sampling_mode_is_rejected():
    with pytest.raises(ValueError, match="sampling"):
        small_model("zoomin")([random_image(0)], sampling="greedy")


# ---------------------------------------------------------------------------- image access
@pytest.mark.parametrize("model_type", ATTENTION_MODELS)
def test_attention_models_never_touch_full_resolution(model_type):
    params = (
        {"tile": 64, "subtile": 9, "s1": 0.125, "s2": 0.25, "n": 4}
        if model_type == "zoomin"
        else {"scale": 0.125, "patch": 9, "n": 4}
    )
    model = build_model(model_type, 2, **params)
    spy = SpyImage(random_image(14, 256, 320))
    out = model([spy], torch.Generator().manual_seed(0))
    model.contrastive_logits([spy], torch.Generator().manual_seed(1))
    full = 256 * 320 * 3
    assert spy.largest <= 32 * 40 * 3 < full  # the low-resolution view is the largest thing read
    views = [call for call in spy.calls if call[0] == "view"]
    assert views and all(call[1] == 0.125 for call in views)
    assert all(call[-1] == 9 for call in spy.calls if call[0] == "patches")
    if model_type == "zoomin":
        forward_regions = [c for c in spy.calls if c[0] == "region_view"]
        assert all(c[3] == 64 and c[4] == 0.25 for c in forward_regions)
        drawn = int((out.attention[0].counts > 0).sum())
        assert len(forward_regions) <= 2 * 4  # forward + contrastive, only drawn tiles
        assert drawn <= 4


def test_zoomin_reads_only_unique_drawn_tiles():
    model = build_model("zoomin", 2, tile=64, subtile=9, s1=0.125, s2=0.25, n=12)
    spy = SpyImage(random_image(15, 128, 128))  # 4 tiles, 12 draws: tiles repeat
    out = model([spy], torch.Generator().manual_seed(0))
    regions = [c for c in spy.calls if c[0] == "region_view"]
    assert len(regions) == int((out.attention[0].counts > 0).sum())
    assert len({c[1:3] for c in regions}) == len(regions)


# ---------------------------------------------------------------------------- build_model
def test_build_model_defaults_match_design():
    model = build_model("zoomin", 2)
    assert (model.tile, model.subtile, model.s1, model.s2, model.n) == (250, 27, 0.1, 0.2, 10)
    ats = build_model("ats", 2)
    assert (ats.scale, ats.patch, ats.n, ats.replace) == (0.2, 27, 10, False)


@pytest.mark.parametrize(
    "model_type, params, key",
    [
        ("resnet50", {}, "model_type"),
        ("zoomin", {"tiles": 10}, "tiles"),
        ("zoomin", {"tile": 0}, "tile"),
        ("zoomin", {"s1": 1.5}, "s1"),
        ("zoomin", {"tile": 4, "s1": 0.1}, "s1"),
        ("zoomin", {"feature": "vgg"}, "feature"),
        ("zoomin", {"attention_activation": "gelu"}, "attention_activation"),
        ("ats", {"replace": "yes"}, "replace"),
        ("ats", {"n": 2.5}, "n"),
        ("cnn", {"patch": 3}, "patch"),
        ("efficientnet_b0", {"scale": 0}, "scale"),
    ],
)
def test_build_model_rejects_bad_config(model_type, params, key):
    with pytest.raises(ConfigError) as error:
        build_model(model_type, 2, **params)
    assert error.value.key == key
    assert key in str(error.value)


@pytest.mark.parametrize("model_type, side", [("cnn", 32), ("efficientnet_b0", 64)])
def test_cnn_refuses_to_train_on_a_lone_view_too_small_for_batchnorm(model_type, side):
    """A view no larger than the total stride, alone in its size group, would reach BatchNorm as
    one value per channel; the error must say which view, which scale and what to change."""
    model = small_model(model_type)  # scale 0.5: a view of side/2 px, just the total stride
    images = [random_image(0, side, side), random_image(1, 96, 96)]
    with pytest.raises(UserError, match=rf"image 0 .*scale 0.5 is {side // 2}x{side // 2} px.*Raise the method's `scale`"):
        model(images)
    model.eval()  # inference uses running statistics: the same batch runs
    assert model(images).logits.shape == (2, 3)
    model.train()  # two views of the same size form one group: BatchNorm sees two values per channel
    assert model([random_image(0, side, side), random_image(1, side, side)]).logits.shape == (2, 3)


def test_build_model_rejects_bad_num_classes():
    with pytest.raises(ConfigError, match="num_classes"):
        build_model("zoomin", 0)


# ---------------------------------------------------------------------------- device
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_models_run_on_cuda(model_type):
    model = small_model(model_type).cuda()
    images = [random_image(16, 80, 80), random_image(17, 90, 70)]  # views > 32 px: EfficientNet trains
    out = model(images, torch.Generator(device="cuda").manual_seed(0))
    assert out.logits.device.type == "cuda"
    out.logits.sum().backward()
    if model_type in ATTENTION_MODELS:
        assert model.contrastive_logits(images, torch.Generator().manual_seed(0)).device.type == "cuda"
        assert model(images, sampling="topk").logits.shape == (2, 3)
