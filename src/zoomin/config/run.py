"""What one training run needs: its model, training, measurement and device settings, as typed records.

:class:`RunSpec` is built by :meth:`zoomin.config.experiment.Experiment.run` and handed, as plain
data (:meth:`RunSpec.to_dict`), to the workflow's train rule, the ``zoomin`` command line and the
benchmarks. Every training, measurement, device and resource default is written once, here (the
config schema is generated from these records, :mod:`zoomin.config.load`).

No torch here (the Snakefile imports this module to plan the DAG).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from zoomin.config.records import Params, param
from zoomin.models.params import ModelParams
from zoomin.models.registry import model_type

DEVICES = ("auto", "cpu", "cuda")
SAMPLING_AT_TEST = ("sample", "topk")
ENTROPY_SCALES = ("image", "entry")
MASK_TARGETS = ("distribution", "binary")


def _class_weights(value: Any) -> Any:
    """``None``, ``"inverse_frequency"`` or a list of positive weights (one per class)."""
    if value is None or value == "inverse_frequency":
        return value
    if isinstance(value, (list, tuple)) and value and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in value
    ):
        return tuple(float(v) for v in value)
    raise ValueError(f"must be null, inverse_frequency or a list of positive numbers, got {value!r}")


CLASS_WEIGHTS_SCHEMA = {
    "oneOf": [
        {"type": "null"},
        {"type": "string", "enum": ["inverse_frequency"]},
        {"type": "array", "minItems": 1, "items": {"type": "number", "exclusiveMinimum": 0}},
    ]
}


@dataclass(frozen=True)
class TrainingConfig(Params):
    """How one run is trained (docs/method.md gives the loss)."""

    epochs: int = param(10, minimum=1)
    batch_size: int = param(8, minimum=1)
    lr: float = param(1e-3, exclusive_minimum=0.0, doc="Adam learning rate")
    weight_decay: float = param(1e-5, minimum=0.0)
    step_size: int = param(30, minimum=1, doc="StepLR: epochs between decays")
    gamma: float = param(0.9, exclusive_minimum=0.0, maximum=1.0, doc="StepLR: decay factor")
    clip_grad_norm: float | None = param(5.0, exclusive_minimum=0.0, doc="null: no clipping")
    entropy_lambda: float = param(1e-5, minimum=0.0, doc="weight of the attention-entropy reward")
    entropy_scale: str = param(
        "image",
        choices=ENTROPY_SCALES,
        doc="what entropy_lambda multiplies (docs/method.md §9.2): image = each attention map's entropy "
        "per image, as ATS (Zoom-In: H(a) + mean over drawn tiles of H(b_t)); entry = each map's entropy "
        "divided by its number of entries, summed over the maps, as the Zoom-In authors' code",
    )
    contrastive_start: int | None = param(
        None, minimum=0, doc="in-sample contrastive loss after this epoch (null: off)"
    )
    mask_loss_weight: float = param(0.0, minimum=0.0, doc="weight of the attention-mask MSE (pixel annotations)")
    mask_target: str = param(
        "distribution",
        choices=MASK_TARGETS,
        doc="what the mask MSE compares each attention map with (docs/method.md §9.4): distribution = the "
        "mask area-averaged onto the map's grid and divided by its sum; binary = 1 on every cell that "
        "holds an annotated pixel, 0 elsewhere (the paper's appendix L)",
    )
    pretrain_epochs: int = param(
        0, minimum=0, doc="epochs pre-training the attention and feature nets as tile classifiers (pixel annotations)"
    )
    class_weights: Any = param(None, check=_class_weights, schema=CLASS_WEIGHTS_SCHEMA)
    sampling_at_test: str = param("sample", choices=SAMPLING_AT_TEST, doc="sample (seeded) or topk")
    # Beside sampling_at_test, not on MeasureConfig: it defines the trained model's predictions (what
    # the evaluation scores and zoomin predict reproduces, both from model.pt's metadata), not what
    # the meters measure; training never uses it (validation ranks epochs with one draw), so it is
    # left out of a checkpoint's identity and changing it re-evaluates without retraining.
    test_draws: int = param(
        1,
        minimum=1,
        doc="test-time Monte Carlo draws per image (evaluation and zoomin predict): the class probabilities "
        "are their mean; models that draw nothing (CNNs, sampling_at_test: topk) run once",
    )


@dataclass(frozen=True)
class MeasureConfig(Params):
    """Per-image inference cost (batch 1) over a few test images: timed repeats after untimed warm-up
    passes on the largest (zoomin.measure.test_cost)."""

    images: int = param(
        3,
        minimum=1,
        doc="test images measured: the largest by pixel count, and the others at evenly spaced ranks of "
        "pixel count down to the smallest; peak memory is the maximum over them, time and MACs the largest's",
    )
    repeats: int = param(5, minimum=1)
    warmup: int = param(2, minimum=0)
    budget_s: float = param(
        10.0, exclusive_minimum=0.0, doc="warm-up and timed passes stop once they took this long (>= 1 timed pass)"
    )


@dataclass(frozen=True)
class RunSettings(Params):
    """Where runs compute."""

    device: str = param("auto", choices=DEVICES, doc="auto: CUDA if visible, else the CPU")
    mixed_precision: bool = param(False, doc="autocast (CUDA only)")


@dataclass(frozen=True)
class TrainResources(Params):
    """Resources of the training and evaluation jobs (Snakemake ``threads`` and ``resources``)."""

    threads: int = param(2, minimum=1)
    gpu: int = param(0, minimum=0)
    mem_mb: int = param(4000, minimum=1)
    runtime: int = param(60, minimum=1, doc="minutes; multiplied by the attempt on retries")


@dataclass(frozen=True)
class ModelSpec:
    """A model type and its checked parameters."""

    type: str
    params: ModelParams

    def build(self, num_classes: int) -> Any:
        return model_type(self.type).build(num_classes, self.params)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "params": self.params.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelSpec:
        return cls(data["type"], model_type(data["type"]).make_params(data["params"]))


@dataclass(frozen=True)
class RunSpec:
    """Everything one training run (and its evaluation) needs."""

    dataset: str
    method: str
    run: str
    seed: int
    model: ModelSpec
    training: TrainingConfig
    measure: MeasureConfig
    settings: RunSettings
    n_folds: int | None  # cross-validation folds of the dataset (None: its fixed split)
    reference_class: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "method": self.method,
            "run": self.run,
            "seed": self.seed,
            "model": self.model.to_dict(),
            "training": self.training.to_dict(),
            "measure": self.measure.to_dict(),
            "settings": self.settings.to_dict(),
            "n_folds": self.n_folds,
            "reference_class": self.reference_class,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunSpec:
        return cls(
            dataset=data["dataset"],
            method=data["method"],
            run=data["run"],
            seed=int(data["seed"]),
            model=ModelSpec.from_dict(data["model"]),
            training=TrainingConfig.from_mapping(data["training"]),
            measure=MeasureConfig.from_mapping(data["measure"]),
            settings=RunSettings.from_mapping(data["settings"]),
            n_folds=data["n_folds"],
            reference_class=data["reference_class"],
        )
