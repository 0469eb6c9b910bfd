"""Each model type's parameters as a typed record: defaults, bounds and the rules relating them.

One record per model type (e.g. :class:`ZoomInParams`, whose ``s1 < s2``), named by its entry in
:mod:`zoomin.models.registry`. A record also tells the workflow what the model reads
(:meth:`ModelParams.view_scales`, :meth:`ModelParams.region_scales`: the views to cache) and the
tile side of its slide caches. The config schema's ``model_params`` is generated from these
records, so a default or bound is written here only.

No torch here: the Snakefile imports the records while it plans the DAG.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from zoomin.config.records import ParamError, Params, param

# Names of the feature networks f (zoomin.models.features builds them) and attention activations.
FEATURE_NETS = ("lenet", "lenet_unnormalised", "resnet16", "ats_traffic")
TOPK_BACKWARDS = ("exact", "diagonal")  # zoomin.models.perturbed_topk
ATTENTION_ACTIVATIONS = ("tanh", "relu")


@dataclass(frozen=True)
class ModelParams(Params):
    """What every parameter record can tell the workflow (none of it by default)."""

    def view_scales(self) -> tuple[float, ...]:
        """Scales of the whole-image views the model reads (those below 1 are cached)."""
        return ()

    def region_scales(self) -> tuple[float, ...]:
        """Scales of the views of regions it reads (cached for image datasets; slides read them)."""
        return ()

    def tile_size(self) -> int | None:
        """Side (full-resolution px) of the tiles the model's stage-1 attention weighs: the tissue
        tiles a slide cache lists for it, the tiles a figure counts. ``None``: it cuts no tiles."""
        return None


def _scale(default: float, doc: str) -> Any:
    return param(default, exclusive_minimum=0.0, maximum=1.0, doc=doc)


# ------------------------------------------------------------------------------------ records
@dataclass(frozen=True)
class ZoomInParams(ModelParams):
    """The Zoom-In network (docs/method.md §2-§7); defaults are the paper's colon settings."""

    tile: int = param(250, minimum=1, doc="tile side T, full-resolution px")
    subtile: int = param(27, minimum=1, doc="sub-tile side P, full-resolution px")
    s1: float = _scale(0.1, "scale of the stage-1 view (whole image)")
    s2: float = _scale(0.2, "scale of the stage-2 views (one per drawn tile)")
    n: int = param(10, minimum=1, doc="number of draws N")
    feature: str = param("lenet", choices=FEATURE_NETS, doc="feature network f")
    attention_activation: str = param("tanh", choices=ATTENTION_ACTIVATIONS)
    tissue_only: bool = param(
        False, doc="whole slides: no stage-1 attention on tiles without tissue (the slide cache's tissue mask)"
    )
    control_variate: bool = param(
        False, doc="baselines in the attention's score-function gradient (docs/method.md §6.1); same value"
    )

    def check(self) -> None:
        if not self.s1 < 1:
            raise ParamError("s1", f"must be below 1, got {self.s1}")
        if round(self.tile * self.s1) < 1:
            raise ParamError("s1", f"a tile ({self.tile} px) is less than one pixel wide in the stage-1 view")
        if not self.s2 > self.s1:
            raise ParamError("s2", f"must be larger than s1 ({self.s1}), got {self.s2}")
        if self.subtile > self.tile:
            raise ParamError("subtile", f"sub-tile {self.subtile} is larger than the tile {self.tile}")

    def view_scales(self) -> tuple[float, ...]:
        return (self.s1,)

    def region_scales(self) -> tuple[float, ...]:
        return (self.s2,)

    def tile_size(self) -> int | None:
        return self.tile


DRAW_RULES = ("fixed", "perplexity")  # how many draws N an image gets (zoomin.models.adaptive_draws)


def _side_list(value: Any) -> tuple[int, ...]:
    """A non-empty list of region sides, each a positive integer."""
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"must be a non-empty list of region sides in px, got {value!r}")
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) or v != int(v) or v < 1 for v in value):
        raise ValueError(f"each side must be a positive integer, got {list(value)}")
    return tuple(int(v) for v in value)


def _scale_list(value: Any) -> tuple[float, ...]:
    """A list of at least two view scales, each in (0, 1]."""
    if not isinstance(value, (list, tuple)) or len(value) < 2:
        raise ValueError(f"must list at least two view scales (K >= 2 stages), got {value!r}")
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 1 for v in value):
        raise ValueError(f"each scale must be in (0, 1], got {list(value)}")
    return tuple(float(v) for v in value)


@dataclass(frozen=True)
class ZoomInKParams(ModelParams):
    """The K-stage Zoom-In network (docs/method.md §14; :mod:`zoomin.models.zoomin_k`): stage 1 weighs
    the cells of side ``regions[0]`` of the whole image's view at ``scales[0]``, stage k the cells of
    side ``regions[k-1]`` inside a region drawn at stage k-1, viewed at ``scales[k-1]``, and the last
    stage the sub-tile positions of a drawn ``regions[-1]`` region at ``scales[-1]``. The defaults
    are Zoom-In's (K = 2, the paper's colon settings): ``regions: [250]``, ``scales: [0.1, 0.2]``.
    ``n_rule: perplexity`` sets each image's N from its stage-1 attention (docs/method.md §15)."""

    regions: tuple[int, ...] = param(
        (250,), check=_side_list, schema={"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 1}},
        doc="sides (full-resolution px) of the cells stages 1..K-1 draw, coarsest first; each divides the one before",
    )
    scales: tuple[float, ...] = param(
        (0.1, 0.2), check=_scale_list,
        schema={"type": "array", "minItems": 2, "items": {"type": "number", "exclusiveMinimum": 0, "maximum": 1}},
        doc="view scale of each of the K stages (K = len(regions) + 1), increasing: stage 1 views the whole "
        "image, stage k the region drawn at stage k-1",
    )
    subtile: int = param(27, minimum=1, doc="sub-tile side P, full-resolution px")
    n: int = param(10, minimum=1, doc="number of draws N (n_rule fixed)")
    n_rule: str = param(
        "fixed", choices=DRAW_RULES,
        doc="fixed: N = n; perplexity: N = clip(round(n_per_perplexity * exp(H(a))), n_min, n_max) per image",
    )
    n_per_perplexity: float = param(1.0, exclusive_minimum=0.0, doc="c of n_rule perplexity: draws per effective tile")
    n_min: int = param(1, minimum=1, doc="fewest draws of an image (n_rule perplexity)")
    n_max: int = param(100, minimum=1, doc="most draws of an image (n_rule perplexity)")
    feature: str = param("lenet", choices=FEATURE_NETS, doc="feature network f")
    attention_activation: str = param("tanh", choices=ATTENTION_ACTIVATIONS)
    tissue_only: bool = param(
        False, doc="whole slides: no attention on cells without tissue (the slide cache's tissue mask), at every stage"
    )
    control_variate: bool = param(
        False, doc="baselines in the attention's score-function gradient (docs/method.md §6.1); same value"
    )

    @property
    def stages(self) -> int:
        """K, the number of stages."""
        return len(self.scales)

    def check(self) -> None:
        if len(self.scales) != len(self.regions) + 1:
            wanted = len(self.regions) + 1
            raise ParamError("scales", f"needs one per stage, len(regions) + 1 = {wanted}, got {len(self.scales)}")
        for outer, inner in zip(self.regions, self.regions[1:]):
            if inner >= outer or outer % inner:
                problem = f"each side must be smaller than the one before and divide it, got {list(self.regions)}"
                raise ParamError("regions", problem)
        if any(later <= earlier for earlier, later in zip(self.scales, self.scales[1:])):
            raise ParamError("scales", f"must increase from stage to stage, got {list(self.scales)}")
        for stage, (side, scale) in enumerate(zip(self.regions, self.scales), start=1):
            if round(side * scale) < 1:
                raise ParamError("scales", f"a stage-{stage} cell ({side} px) is less than one pixel wide at {scale}")
        if self.subtile > self.regions[-1]:
            raise ParamError("subtile", f"sub-tile {self.subtile} is larger than the last region {self.regions[-1]}")
        if self.n_min > self.n_max:
            raise ParamError("n_min", f"must be at most n_max ({self.n_max}), got {self.n_min}")

    def view_scales(self) -> tuple[float, ...]:
        return self.scales[:1]

    def region_scales(self) -> tuple[float, ...]:
        return self.scales[1:]

    def tile_size(self) -> int | None:
        return self.regions[-1]


@dataclass(frozen=True)
class ATSParams(ModelParams):
    """Attention sampling over one view (Katharopoulos & Fleuret 2019); colon defaults."""

    scale: float = _scale(0.2, "scale of the view the attention runs over")
    patch: int = param(27, minimum=1, doc="patch side P, full-resolution px")
    n: int = param(10, minimum=1, doc="number of patches N")
    feature: str = param("lenet", choices=FEATURE_NETS, doc="feature network f")
    replace: bool = param(False, doc="draw with replacement (else Gumbel-top-k without)")
    attention_activation: str = param("tanh", choices=ATTENTION_ACTIVATIONS)
    control_variate: bool = param(
        False, doc="baselines in the attention's score-function gradient (docs/method.md §6.1); same value"
    )

    def view_scales(self) -> tuple[float, ...]:
        return (self.scale,)


@dataclass(frozen=True)
class ViewCNNParams(ModelParams):
    """A CNN over the whole image at one scale (1.0: full resolution)."""

    scale: float = _scale(1.0, "scale of the view the CNN classifies")

    def view_scales(self) -> tuple[float, ...]:
        return (self.scale,)


BAGNET_RECEPTIVE_FIELDS = (9, 17, 33)


BAGNET_BLOCKS = ("1,1,1,1", "3,4,6,3")


@dataclass(frozen=True)
class BagNetParams(ModelParams):
    """BagNet-q (Brendel & Bethge 2019) over one view; defaults: BagNet-33 at full resolution, shrunk
    until 1000 px images train on a 2-core CPU (docs/methods.md, BagNet)."""

    scale: float = _scale(1.0, "scale of the view the BagNet classifies (1.0: full resolution)")
    receptive_field: int = param(
        33, choices=BAGNET_RECEPTIVE_FIELDS, doc="q: each local class evidence sees a q x q px window of the view"
    )
    width: int = param(4, minimum=1, doc="planes of the first stage (BagNet: 64), doubled per stage, 4x expansion")
    blocks: str = param(
        "1,1,1,1", choices=BAGNET_BLOCKS, doc="bottleneck blocks per stage (BagNet's ResNet-50 layout: 3,4,6,3)"
    )

    def view_scales(self) -> tuple[float, ...]:
        return (self.scale,)

    def stage_blocks(self) -> tuple[int, ...]:
        return tuple(int(count) for count in self.blocks.split(","))


@dataclass(frozen=True)
class TopKParams(ModelParams):
    """Differentiable patch selection with a perturbed top-k (Cordonnier et al. 2021); defaults:
    the reference traffic-sign settings scaled to the CPU stand-in, with the wider noise and the
    features that learned it in a few hundred steps (docs/methods.md, Top-K)."""

    scale: float = _scale(0.5, "scale of the view the scorer runs over")
    patch: int = param(32, minimum=1, doc="patch side P, full-resolution px")
    k: int = param(10, minimum=1, doc="number of patches k")
    n_samples: int = param(100, minimum=2, doc="noise samples S of the perturbed top-k")
    sigma: float = param(0.2, exclusive_minimum=0.0, doc="noise std of the perturbed top-k (scores in [0, 1])")
    sigma_decay_steps: int | None = param(
        None, minimum=1, doc="training steps over which sigma decays linearly to 0 (null: constant sigma)"
    )
    backward: str = param(
        "exact",
        choices=TOPK_BACKWARDS,
        doc="score gradient of the perturbed top-k: exact = the Jacobian of its expectation; diagonal = "
        "only that Jacobian's diagonal, the reference's (Cordonnier et al.) training operator",
    )
    feature: str = param("lenet_unnormalised", choices=FEATURE_NETS, doc="feature network run on each patch")
    hidden: int = param(32, minimum=1, doc="width of the dense + swish layer after the mean over patches")

    def view_scales(self) -> tuple[float, ...]:
        return (self.scale,)


@dataclass(frozen=True)
class PatchDropParams(ModelParams):
    """PatchDrop (Uzkent & Ermon 2020; docs/methods.md): a policy keeps or drops the cells of a grid."""

    grid: int = param(4, minimum=1, doc="the image is split into grid x grid cells (the reference's 4x4)")
    policy_scale: float = _scale(0.125, "scale of the low-resolution view the policy network sees")
    classifier_scale: float = _scale(1.0, "scale at which the classifier sees the kept cells (1: full resolution)")
    width: int = param(32, minimum=1, doc="channels of the classifier (the colon CNN's 8-layer ResNet)")
    alpha: float = param(0.8, exclusive_minimum=0.5, maximum=1.0, doc="bound p' = alpha p + (1 - alpha)(1 - p)")
    penalty: float = param(-10.0, maximum=0.0, doc="reward of a wrong prediction (a right one: 1 - (kept/cells)^2)")
    policy_start: int = param(100, minimum=0, doc="training steps before the policy loss is switched on")

    def view_scales(self) -> tuple[float, ...]:
        return (self.policy_scale,)

    def region_scales(self) -> tuple[float, ...]:
        return (self.classifier_scale,)


@dataclass(frozen=True)
class RACNNParams(ModelParams):
    """RA-CNN (Fu et al. 2017; docs/methods.md): three scales, each zooming into a square of the last."""

    scale: float = _scale(1.0, "scale of the view of the whole image that scale 1 classifies")
    crop_size: int = param(
        224, minimum=32, doc="side (px) of the input of scales 2 and 3 (>= 32: a 2x2 map after the stride of 16)"
    )
    width: int = param(32, minimum=1, doc="channels of each scale's CNN (an 8-layer ResNet; the reference: VGG-19)")
    min_side: float = param(
        1 / 3, exclusive_minimum=0.0, maximum=1.0, doc="smallest side of an attended square, fraction of its parent's"
    )
    margin: float = param(0.05, minimum=0.0, doc="margin of the inter-scale ranking loss")
    rank_weight: float = param(1.0, minimum=0.0, doc="weight of the ranking loss")

    def view_scales(self) -> tuple[float, ...]:
        return (self.scale,)


@dataclass(frozen=True)
class BagParams(ModelParams):
    """A slide as a bag of instances (zoomin.models.tissue_bags): the tissue cells of a ``patch`` grid, read
    at ``scale`` and embedded by a small CNN; what MIL and IPS share."""

    patch: int = param(256, minimum=8, doc="instance side, full-resolution px")
    scale: float = _scale(1.0, "scale the instances are read at (1: full resolution)")
    width: int = param(16, minimum=1, doc="channels of the patch CNN's stem, doubled after it")
    chunk: int = param(64, minimum=1, doc="instances embedded at once in the gradient-free pass over the bag")

    def check(self) -> None:
        if round(self.patch * self.scale) < 8:
            side = round(self.patch * self.scale)
            raise ParamError("scale", f"an instance ({self.patch} px) would be {side} px at this scale (at least 8)")

    def region_scales(self) -> tuple[float, ...]:
        return (self.scale,) if self.scale < 1 else ()


@dataclass(frozen=True)
class MILParams(BagParams):
    """Top-instance MIL (Campanella et al. 2019; docs/methods.md); the reference's CNN: ResNet-34."""


@dataclass(frozen=True)
class CLAMParams(BagParams):
    """CLAM-SB (Lu et al. 2021; docs/methods.md): gated attention MIL on a frozen encoder's instance
    embeddings, with instance-level clustering of the most and least attended instances."""

    hidden: int = param(64, minimum=2, doc="width of the embedding layer and attention (CLAM: 512)")
    k_sample: int = param(8, minimum=1, doc="instances pseudo-labelled at each end of the attention (CLAM: 8)")
    bag_weight: float = param(0.7, exclusive_minimum=0.0, maximum=1.0, doc="CLAM's weight of the slide loss")


@dataclass(frozen=True)
class IPSParams(BagParams):
    """Iterative patch selection (Bergner et al. 2023; docs/methods.md): the ``memory`` best instances
    kept chunk by chunk (``chunk`` is IPS's I) without gradients, then pooled by cross-attention."""

    memory: int = param(8, minimum=1, doc="instances kept (M)")
    heads: int = param(4, minimum=1, doc="heads of the cross-attention")

    def check(self) -> None:
        super().check()
        if (2 * self.width) % self.heads:
            raise ParamError("heads", f"must divide the embedding width 2 x width = {2 * self.width}")


@dataclass(frozen=True)
class MRMILParams(ModelParams):
    """MRMIL (Li et al. 2021; docs/methods.md): gated attention MIL over the tissue regions at
    ``low_scale`` picks the ``top`` regions; a second one classifies their ``patch`` cells at
    ``high_scale``. Stage 2 reads at most ``top * (region / patch)^2`` instances."""

    region: int = param(1024, minimum=8, doc="side of a stage-1 instance (a region), full-resolution px")
    low_scale: float = _scale(1 / 32, "scale the regions are read at (instances of region * low_scale px)")
    patch: int = param(256, minimum=8, doc="side of a stage-2 instance, full-resolution px; divides region")
    high_scale: float = _scale(1.0, "scale the stage-2 instances are read at (1: full resolution)")
    top: int = param(4, minimum=1, doc="regions of highest stage-1 attention read at high_scale")
    width: int = param(16, minimum=1, doc="channels of each patch CNN's stem, doubled after it")
    hidden: int = param(64, minimum=2, doc="width of each MIL head's embedding layer (its attention: half)")
    chunk: int = param(64, minimum=1, doc="stage-1 instances read and embedded at once")
    stage1_weight: float = param(1.0, minimum=0.0, doc="weight of the stage-1 cross-entropy in the loss")

    def check(self) -> None:
        if round(self.region * self.low_scale) < 8:
            side = round(self.region * self.low_scale)
            raise ParamError("low_scale", f"a region ({self.region} px) would be {side} px at this scale (at least 8)")
        if self.patch > self.region:
            raise ParamError("patch", f"patch {self.patch} is larger than the region {self.region}")
        if self.region % self.patch:
            raise ParamError("patch", f"must divide the region {self.region} (a region is a grid of patches)")
        if round(self.patch * self.high_scale) < 8:
            side = round(self.patch * self.high_scale)
            raise ParamError("high_scale", f"a patch ({self.patch} px) would be {side} px at this scale (at least 8)")
        if not self.high_scale > self.low_scale:
            raise ParamError("high_scale", f"must be larger than low_scale ({self.low_scale}), got {self.high_scale}")

    def region_scales(self) -> tuple[float, ...]:
        return tuple(scale for scale in (self.low_scale, self.high_scale) if scale < 1)


@dataclass(frozen=True)
class StreamingCNNParams(ModelParams):
    """Streaming CNN (Pinckaers et al. 2020; docs/methods.md): a CNN over the whole view at ``scale``,
    its convolutional blocks run tile by tile forward and backward."""

    scale: float = _scale(0.0625, "scale of the view of the whole image the CNN reads")
    tile: int = param(512, minimum=1, doc="side of a streamed tile, view px (memory, not results)")
    width: int = param(8, minimum=1, doc="channels of the first block, doubled per block")
    blocks: int = param(3, minimum=1, maximum=6, doc="streamed blocks (unpadded conv3x3, ReLU, max-pool 2)")

    def view_scales(self) -> tuple[float, ...]:
        return (self.scale,)
