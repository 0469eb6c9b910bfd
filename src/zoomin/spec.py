"""The configuration as typed records: what one run needs, built from the config in one place.

:func:`experiment` turns a workflow config (``config/config.yaml`` and friends, already checked
against the schema by :mod:`zoomin.config`) into an :class:`Experiment`: its datasets, methods and
settings, with every default filled in. ``Experiment.run(dataset, method, run)`` gives the
:class:`RunSpec` of one training run, which the Snakemake rules, the ``zoomin`` command line and
the benchmarks all hand to :func:`zoomin.training.train` and :func:`zoomin.evaluation.evaluate`.

Every default is written once, in the records below (:class:`TrainingConfig`, :class:`MeasureConfig`,
:class:`RunSettings`, :class:`TrainResources`) or in the model registry's parameter records;
the config schema is generated from them. Training settings merge in this order:
``TrainingConfig`` defaults < ``training_defaults`` < ``datasets.<d>.training`` < ``methods.<m>.training``.
Model parameters: the record's defaults < ``datasets.<d>.model_params.<model type>`` <
``methods.<m>.params``. An invalid value is a :class:`zoomin.errors.ConfigError` naming the full key.

No torch here (the Snakefile imports this module to plan the DAG).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from zoomin.errors import ConfigError
from zoomin.models.registry import ModelParams, model_type
from zoomin.params import ParamError, Params, param
from zoomin.runs import parse_run, run_ids, run_seed

DEVICES = ("auto", "cpu", "cuda")
SAMPLING_AT_TEST = ("sample", "topk")
TABLES = ("table1", "table2")
DEFAULT_SLIDE_TILE = 256  # tissue-tile side of a slide cache when no model of the dataset sets one


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
    contrastive_start: int | None = param(
        None, minimum=0, doc="in-sample contrastive loss after this epoch (null: off)"
    )
    mask_loss_weight: float = param(0.0, minimum=0.0, doc="weight of the attention-mask MSE (pixel annotations)")
    class_weights: Any = param(None, check=_class_weights, schema=CLASS_WEIGHTS_SCHEMA)
    sampling_at_test: str = param("sample", choices=SAMPLING_AT_TEST, doc="sample (seeded) or topk")


@dataclass(frozen=True)
class MeasureConfig(Params):
    """Per-image inference measurement (batch 1): timed repeats after untimed warm-up passes."""

    repeats: int = param(5, minimum=1)
    warmup: int = param(2, minimum=0)


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
class PredictSettings(Params):
    """How ``zoomin predict`` (and the workflow's ``predict`` rule) applies a trained model."""

    sampling: str | None = param(
        None, choices=SAMPLING_AT_TEST, doc="sample (seeded) or topk; null: the run's sampling_at_test"
    )
    seed: int | None = param(None, minimum=0, doc="seed of the draws; null: the run's seed (as its evaluation)")
    asap: bool = param(False, doc="also write ASAP XML annotations")
    thumbnail: int = param(1024, minimum=64, doc="longer side of the heatmap's thumbnail, px")
    ignore_mpp: bool = param(False, doc="predict on slides whose pixel size differs from the model's")


@dataclass(frozen=True)
class PredictionTarget:
    """One ``predict`` job: a trained run applied to the images, slides or folders ``inputs``."""

    dataset: str
    method: str
    run: str
    inputs: tuple[str, ...]


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


@dataclass(frozen=True)
class MethodSpec:
    name: str
    model: str
    label: str
    params: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    block: str
    table: str
    source: str
    runs: tuple[str, ...]
    n_folds: int | None
    methods: tuple[str, ...]
    reference_class: str | None
    model_params: dict[str, dict[str, Any]]
    training: dict[str, Any]
    construct: dict[str, Any]
    download: dict[str, Any]


@dataclass(frozen=True)
class Experiment:
    """A whole config, typed and checked; see the module docstring."""

    seed: int
    settings: RunSettings
    measure: MeasureConfig
    resources: TrainResources
    training_defaults: dict[str, Any]
    methods: dict[str, MethodSpec]
    datasets: dict[str, DatasetSpec]
    attention_method: str | None
    predict: PredictSettings = field(default_factory=PredictSettings)
    predictions: tuple[PredictionTarget, ...] = ()

    # ------------------------------------------------------------------ per (dataset, method)
    def model(self, dataset: str, method: str) -> ModelSpec:
        """The method's model type with its parameters for this dataset."""
        spec = self.methods[method]
        ds = self.datasets[dataset]
        given = {**ds.model_params.get(spec.model, {}), **spec.params}
        try:
            return ModelSpec(spec.model, model_type(spec.model).make_params(given))
        except ParamError as error:
            if error.field in spec.params:
                key = f"methods.{method}.params.{error.field}"
            else:
                key = f"datasets.{dataset}.model_params.{spec.model}.{error.field}"
            raise ConfigError(key, error.problem) from None

    def training(self, dataset: str, method: str | None = None) -> TrainingConfig:
        """Training settings of a dataset (and method), merged as the module docstring says."""
        layers = [
            ("training_defaults", self.training_defaults),
            (f"datasets.{dataset}.training", self.datasets[dataset].training),
        ]
        if method is not None:
            layers.append((f"methods.{method}.training", self.methods[method].training))
        merged: dict[str, Any] = {}
        origin: dict[str, str] = {}
        for where, values in layers:
            merged.update(values)
            origin.update({key: where for key in values})
        try:
            return TrainingConfig.from_mapping(merged)
        except ParamError as error:
            where = origin.get(error.field, "training_defaults")
            raise ConfigError(f"{where}.{error.field}", error.problem) from None

    def run(self, dataset: str, method: str, run: str) -> RunSpec:
        """The :class:`RunSpec` of one run."""
        ds = self.datasets[dataset]
        if method not in ds.methods:
            raise ConfigError(f"datasets.{dataset}.methods", f"method '{method}' is not listed")
        if run not in ds.runs:
            raise ConfigError(f"datasets.{dataset}.runs", f"run '{run}' is not one of {', '.join(ds.runs)}")
        return RunSpec(
            dataset=dataset,
            method=method,
            run=run,
            seed=run_seed(self.seed, parse_run(run)),
            model=self.model(dataset, method),
            training=self.training(dataset, method),
            measure=self.measure,
            settings=self.settings,
            n_folds=ds.n_folds,
            reference_class=ds.reference_class,
        )

    # ------------------------------------------------------------------ per dataset
    def cache_scales(self, dataset: str, slides: bool) -> list[float]:
        """View scales below 1 to cache: the whole-image views of every method, and for image
        datasets the region views too (slides read those from the slide)."""
        scales: set[float] = set()
        for method in self.datasets[dataset].methods:
            params = self.model(dataset, method).params
            scales.update(params.view_scales())
            if not slides:
                scales.update(params.region_scales())
        return sorted(scale for scale in scales if scale < 1)

    def slide_tile_size(self, dataset: str) -> int:
        """Tissue-tile side of the dataset's slide caches: the first method's that sets one."""
        for method in self.datasets[dataset].methods:
            size = self.model(dataset, method).params.slide_tile_size()
            if size is not None:
                return size
        return DEFAULT_SLIDE_TILE

    def tables(self) -> list[str]:
        return sorted({ds.table for ds in self.datasets.values()})


def _record(cls: type[Params], values: Any, key: str) -> Any:
    """``cls`` from a config block at ``key`` ("" for the top level)."""
    try:
        return cls.from_mapping(values)
    except ParamError as error:
        raise ConfigError(f"{key}.{error.field}" if key else error.field, error.problem) from None


def experiment(config: Mapping[str, Any]) -> Experiment:
    """The typed :class:`Experiment` of a schema-valid config; checks every run's settings, so a
    bad value is refused here, before any job runs."""
    methods = {
        name: MethodSpec(
            name=name,
            model=method["model"],
            label=method["label"],
            params=dict(method.get("params") or {}),
            training=dict(method.get("training") or {}),
        )
        for name, method in config["methods"].items()
    }
    for name, method in methods.items():
        try:
            model_type(method.model)
        except ConfigError as error:
            raise ConfigError(f"methods.{name}.model", error.problem) from None
    datasets = {}
    for name, ds in config["datasets"].items():
        for method in ds["methods"]:
            if method not in methods:
                raise ConfigError(
                    f"datasets.{name}.methods", f"unknown method '{method}' (known: {', '.join(methods)})"
                )
        runs = ds["runs"]
        datasets[name] = DatasetSpec(
            name=name,
            block=ds["block"],
            table=ds.get("table", "table1"),
            source=ds["source"],
            runs=tuple(run_ids(runs, f"datasets.{name}.runs")),
            n_folds=int(runs["folds"]) if "folds" in runs else None,
            methods=tuple(ds["methods"]),
            reference_class=ds.get("reference_class"),
            model_params={key: dict(value or {}) for key, value in (ds.get("model_params") or {}).items()},
            training=dict(ds.get("training") or {}),
            construct=dict(ds.get("construct") or {}),
            download=dict(ds.get("download") or {}),
        )
    figures = config.get("figures") or {}
    attention_method = figures.get("attention_method")
    if attention_method is not None and attention_method not in methods:
        raise ConfigError("figures.attention_method", f"unknown method '{attention_method}'")
    predict = config.get("predict") or {}
    result = Experiment(
        seed=int(config["seed"]),
        settings=_record(RunSettings, {k: config[k] for k in ("device", "mixed_precision") if k in config}, ""),
        measure=_record(MeasureConfig, config.get("measure"), "measure"),
        resources=_record(TrainResources, (config.get("resources") or {}).get("train"), "resources.train"),
        training_defaults=dict(config.get("training_defaults") or {}),
        methods=methods,
        datasets=datasets,
        attention_method=attention_method,
        predict=_record(PredictSettings, {k: v for k, v in predict.items() if k != "datasets"}, "predict"),
        predictions=_prediction_targets(predict.get("datasets") or {}, datasets),
    )
    for name, ds in datasets.items():
        for method in ds.methods:
            result.model(name, method)
            result.training(name, method)
    return result


def _prediction_targets(blocks: Mapping[str, Any], datasets: Mapping[str, DatasetSpec]) -> tuple[PredictionTarget, ...]:
    """``predict.datasets``: per dataset, the inputs and which of its methods and runs predict them
    (default: every method, the first run)."""
    targets = []
    for name, block in blocks.items():
        key = f"predict.datasets.{name}"
        if name not in datasets:
            raise ConfigError(key, f"unknown dataset '{name}' (known: {', '.join(datasets)})")
        ds = datasets[name]
        methods = list(block.get("methods") or ds.methods)
        runs = list(block.get("runs") or ds.runs[:1])
        for method in methods:
            if method not in ds.methods:
                raise ConfigError(f"{key}.methods", f"'{method}' is not one of its methods {list(ds.methods)}")
        for run in runs:
            if run not in ds.runs:
                raise ConfigError(f"{key}.runs", f"'{run}' is not one of its runs {list(ds.runs)}")
        inputs = tuple(str(path) for path in block["inputs"])
        targets.extend(PredictionTarget(name, method, run, inputs) for method in methods for run in runs)
    return tuple(targets)
