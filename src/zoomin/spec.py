"""The configuration as typed records: what one run needs, built from the config in one place.

:func:`experiment` turns a workflow config (``config/config.yaml`` and friends, already checked
against the schema by :mod:`zoomin.config`) into an :class:`Experiment`: its datasets, methods and
settings, with every default filled in. ``Experiment.run(dataset, method, run)`` gives the
:class:`RunSpec` of one training run, which the Snakemake rules, the ``zoomin`` command line and
the benchmarks all hand to :func:`zoomin.training.train` and :func:`zoomin.evaluation.evaluate`.

Which runs exist: every method of a dataset's ``methods`` (its Table 1 or 2 block), plus the
``(dataset, method)`` rows of the config's ``tables:`` block (:class:`TableSpec`) and what its
``figures:`` block names (:class:`FiguresSpec`); a method on a dataset is one set of runs wherever
it appears (:meth:`Experiment.trained`).

Every default is written once, in the records below (:class:`TrainingConfig`, :class:`MeasureConfig`,
:class:`RunSettings`, :class:`TrainResources`) or in the model registry's parameter records;
the config schema is generated from them. Training settings merge in this order:
``TrainingConfig`` defaults < ``training_defaults`` < ``datasets.<d>.training`` < ``methods.<m>.training``.
Model parameters: the record's defaults < ``datasets.<d>.model_params.<model type>`` <
``methods.<m>.params``. An invalid value is a :class:`zoomin.errors.ConfigError` naming the full key.

No torch here (the Snakefile imports this module to plan the DAG).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from zoomin.errors import ConfigError
from zoomin.models.registry import MODEL_TYPES, ModelParams, model_type
from zoomin.params import ParamError, Params, param
from zoomin.runs import parse_run, run_ids, run_seed

DEVICES = ("auto", "cpu", "cuda")
SAMPLING_AT_TEST = ("sample", "topk")
TABLES = ("table1", "table2")  # the tables a dataset's `table:` puts its block in (rows: its methods)
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
    pretrain_epochs: int = param(
        0, minimum=0, doc="epochs pre-training the attention and feature nets as tile classifiers (pixel annotations)"
    )
    class_weights: Any = param(None, check=_class_weights, schema=CLASS_WEIGHTS_SCHEMA)
    sampling_at_test: str = param("sample", choices=SAMPLING_AT_TEST, doc="sample (seeded) or topk")


@dataclass(frozen=True)
class MeasureConfig(Params):
    """Per-image inference measurement (batch 1): timed repeats after untimed warm-up passes."""

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
    table: str | None  # None: in no per-dataset table; its runs come from `tables:` and `figures:`
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
class TableSpec:
    """One results table: its ``(dataset, method)`` rows, in order, and the run settings shown as
    columns beside the numbers (fields of the model's parameters or of the training settings).

    Table 1 and Table 2 are made from the datasets' ``table:`` key (each dataset a block, its
    ``methods`` the rows); every other table from the config's ``tables:`` block."""

    name: str
    title: str
    rows: tuple[tuple[str, str], ...]
    settings: tuple[str, ...] = ()
    runs: int | None = None  # the first this many runs of each dataset; None: all of them


@dataclass(frozen=True)
class ParetoSpec:
    """Accuracy against peak inference memory of ``methods`` on ``dataset`` (results/figures/pareto.*)."""

    dataset: str
    methods: tuple[str, ...]


@dataclass(frozen=True)
class MemoryFigureSpec:
    """Figure 4 (results/figures/memory.png): left, tiles and input memory per image during the
    training runs of ``methods`` on ``dataset``; right, peak inference memory against image side,
    measured at ``sides`` (px) with the colon settings of the paper; the full-resolution CNN, whose
    cost grows with the image's area (a minute per pass at 4000 px on a CPU), up to ``cnn_max_side``."""

    dataset: str
    methods: tuple[str, ...]
    sides: tuple[int, ...] = (500, 1000, 2000, 4000)
    cnn_max_side: int = 2000


@dataclass(frozen=True)
class FiguresSpec:
    """Which figures the workflow draws, beyond the training curves (one figure per trained dataset and method).

    ``attention_method`` draws ``attention_<dataset>.png`` (Fig. 3/6), Fig. 7
    (``spearman_<dataset>``, for the datasets in ``spearman``, which must have masks) and Fig. 8
    (``views_<dataset>``, the views the model sees, for the datasets in ``views``);
    ``errorbars`` lists the datasets of Fig. 5 (accuracy per run of their table methods)."""

    attention_method: str | None = None
    errorbars: tuple[str, ...] = ()
    spearman: tuple[str, ...] = ()
    views: tuple[str, ...] = ()
    pareto: ParetoSpec | None = None
    memory: MemoryFigureSpec | None = None


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
    figures: FiguresSpec = field(default_factory=FiguresSpec)
    extra_tables: dict[str, TableSpec] = field(default_factory=dict)  # the config's `tables:` block

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
        if method not in self.methods_of(dataset):
            raise ConfigError(
                f"datasets.{dataset}.methods", f"method '{method}' is not listed (nor in a table or figure)"
            )
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
        for method in self.methods_of(dataset):
            params = self.model(dataset, method).params
            scales.update(params.view_scales())
            if not slides:
                scales.update(params.region_scales())
        return sorted(scale for scale in scales if scale < 1)

    def slide_tile_size(self, dataset: str) -> int:
        """Tissue-tile side of the dataset's slide caches: the first method's that sets one."""
        for method in self.methods_of(dataset):
            size = self.model(dataset, method).params.slide_tile_size()
            if size is not None:
                return size
        return DEFAULT_SLIDE_TILE

    def methods_of(self, dataset: str) -> tuple[str, ...]:
        """Every method trained on ``dataset``: its own ``methods`` (its table rows), then those the
        config's tables and figures add. A method on a dataset is one set of runs wherever it
        appears (Table 4's default row is Table 1's run)."""
        names = list(self.datasets[dataset].methods)
        for pair_dataset, method in self._extra_pairs():
            if pair_dataset == dataset and method not in names:
                names.append(method)
        return tuple(names)

    def trained(self) -> list[tuple[str, str]]:
        """Every trained ``(dataset, method)``, datasets in config order."""
        return [(dataset, method) for dataset in self.datasets for method in self.methods_of(dataset)]

    def _extra_pairs(self) -> list[tuple[str, str]]:
        return [row for table in self.extra_tables.values() for row in table.rows] + self._figure_pairs()

    def _figure_pairs(self) -> list[tuple[str, str]]:
        pairs = []
        figures = self.figures
        for spec in (figures.pareto, figures.memory):
            if spec is not None:
                pairs += [(spec.dataset, method) for method in spec.methods]
        if figures.attention_method is not None:
            pairs += [(dataset, figures.attention_method) for dataset in (*figures.spearman, *figures.views)]
        return pairs

    def tables(self) -> list[str]:
        """Names of every table: those of the datasets' ``table:`` key, then the config's ``tables:``."""
        return sorted({ds.table for ds in self.datasets.values() if ds.table is not None}) + list(self.extra_tables)

    def table(self, name: str) -> TableSpec:
        """The :class:`TableSpec` of table ``name``."""
        if name in self.extra_tables:
            return self.extra_tables[name]
        rows = tuple((d, m) for d, ds in self.datasets.items() if ds.table == name for m in ds.methods)
        if not rows:
            raise ConfigError("tables", f"no table '{name}' (known: {', '.join(self.tables())})")
        return TableSpec(name, f"Table {name.removeprefix('table')}", rows)

    def table_rows(self, name: str) -> list[dict[str, Any]]:
        """The rows of table ``name`` as plain data (:class:`zoomin.tables.TableRow` fields): dataset,
        method, block, label and the values of the table's settings for that run."""
        table = self.table(name)
        return [
            {
                "dataset": dataset,
                "method": method,
                "block": self.datasets[dataset].block,
                "label": self.methods[method].label,
                "settings": {setting: self.setting(dataset, method, setting) for setting in table.settings},
            }
            for dataset, method in table.rows
        ]

    def table_runs(self, name: str) -> list[tuple[str, str, str]]:
        """``(dataset, method, run)`` of every run whose metrics go into table ``name``."""
        table = self.table(name)
        return [(d, m, run) for d, m in table.rows for run in self.datasets[d].runs[: table.runs]]

    def runs_of(self, pairs: list[tuple[str, str]]) -> list[tuple[str, str, str]]:
        """``(dataset, method, run)`` of every run of the given ``(dataset, method)`` pairs."""
        return [(d, m, run) for d, m in pairs for run in self.runs_used(d, m)]

    def runs_used(self, dataset: str, method: str) -> tuple[str, ...]:
        """The runs of ``method`` on ``dataset`` that the tables and figures show: all the dataset's
        runs, or its first ``runs`` when only tables that take that many (``tables.<name>.runs``)
        show the pair."""
        runs = self.datasets[dataset].runs
        if method in self.datasets[dataset].methods or (dataset, method) in self._figure_pairs():
            return runs
        wanted = [t.runs or len(runs) for t in self.extra_tables.values() if (dataset, method) in t.rows]
        return runs[: max(wanted)] if wanted else runs

    def setting(self, dataset: str, method: str, name: str) -> Any:
        """A run setting of ``method`` on ``dataset`` as it takes effect: a model parameter, else a
        training setting (``contrastive_start`` is None for models without the contrastive branch)."""
        model = self.model(dataset, method)
        params = model.params.to_dict()
        if name in params:
            return params[name]
        if name == "contrastive_start" and not model_type(model.type).contrastive:
            return None
        return self.training(dataset, method).to_dict().get(name)


def _setting_names() -> frozenset[str]:
    names = {f.name for f in dataclasses.fields(TrainingConfig)}
    for record in MODEL_TYPES.values():
        names.update(f.name for f in dataclasses.fields(record.params))
    return frozenset(names)


SETTING_NAMES = _setting_names()  # what a table's `settings:` may name


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
        table = ds.get("table", "table1")
        if table is not None and not ds.get("methods"):
            raise ConfigError(f"datasets.{name}.methods", f"a dataset in {table} needs at least one method")
        for method in ds.get("methods") or ():
            if method not in methods:
                raise ConfigError(
                    f"datasets.{name}.methods", f"unknown method '{method}' (known: {', '.join(methods)})"
                )
        runs = ds["runs"]
        datasets[name] = DatasetSpec(
            name=name,
            block=ds["block"],
            table=table,
            source=ds["source"],
            runs=tuple(run_ids(runs, f"datasets.{name}.runs")),
            n_folds=int(runs["folds"]) if "folds" in runs else None,
            methods=tuple(ds.get("methods") or ()),
            reference_class=ds.get("reference_class"),
            model_params={key: dict(value or {}) for key, value in (ds.get("model_params") or {}).items()},
            training=dict(ds.get("training") or {}),
            construct=dict(ds.get("construct") or {}),
            download=dict(ds.get("download") or {}),
        )
    predict = config.get("predict") or {}
    figures = _figures(config.get("figures") or {}, methods, datasets)
    attention_method = figures.attention_method
    extra_tables = _tables(config.get("tables") or {}, methods, datasets)
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
        figures=figures,
        extra_tables=extra_tables,
    )
    for name, method in result.trained():
        model = result.model(name, method)
        if result.training(name, method).pretrain_epochs and not model_type(model.type).tile_pretraining:
            raise ConfigError(
                f"methods.{method}.training.pretrain_epochs",
                f"the {model_type(model.type).label} has no parts to pre-train as tile classifiers (Zoom-In has)",
            )
    for table in extra_tables.values():
        for setting in table.settings:
            if setting not in SETTING_NAMES:
                known = ", ".join(sorted(SETTING_NAMES))
                raise ConfigError(f"tables.{table.name}.settings", f"unknown setting '{setting}' (known: {known})")
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
def _known(kind: str, name: str, known: Mapping[str, Any], key: str) -> str:
    if name not in known:
        raise ConfigError(key, f"unknown {kind} '{name}' (known: {', '.join(known)})")
    return name


def _tables(
    block: Mapping[str, Any], methods: Mapping[str, Any], datasets: Mapping[str, DatasetSpec]
) -> dict[str, TableSpec]:
    """The config's ``tables:`` block as :class:`TableSpec` records, every row checked."""
    tables = {}
    for name, table in block.items():
        if name in TABLES:
            raise ConfigError(
                f"tables.{name}", f"{name} is made from the datasets' `table:` key; give this table another name"
            )
        rows = []
        for i, (dataset, method) in enumerate(table["rows"]):
            _known("dataset", dataset, datasets, f"tables.{name}.rows[{i}]")
            _known("method", method, methods, f"tables.{name}.rows[{i}]")
            if (dataset, method) in rows:
                raise ConfigError(f"tables.{name}.rows[{i}]", f"row [{dataset}, {method}] is listed twice")
            rows.append((dataset, method))
        tables[name] = TableSpec(
            name, table["title"], tuple(rows), tuple(table.get("settings") or ()), table.get("runs")
        )
    return tables


def _figures(block: Mapping[str, Any], methods: Mapping[str, Any], datasets: Mapping[str, DatasetSpec]) -> FiguresSpec:
    """The config's ``figures:`` block as a :class:`FiguresSpec`, every name checked."""
    attention = block.get("attention_method")
    if attention is not None:
        _known("method", attention, methods, "figures.attention_method")
    lists = {}
    for key in ("errorbars", "spearman", "views"):
        lists[key] = tuple(_known("dataset", d, datasets, f"figures.{key}") for d in block.get(key) or ())
        if lists[key] and key != "errorbars" and attention is None:
            raise ConfigError(f"figures.{key}", "needs figures.attention_method (the model whose attention is drawn)")
    for dataset in lists["errorbars"]:
        if datasets[dataset].table is None:
            raise ConfigError("figures.errorbars", f"dataset '{dataset}' is in no table (its `table:` is null)")
    pareto = memory = None
    if block.get("pareto"):
        spec = block["pareto"]
        pareto = ParetoSpec(
            _known("dataset", spec["dataset"], datasets, "figures.pareto.dataset"),
            tuple(_known("method", m, methods, "figures.pareto.methods") for m in spec["methods"]),
        )
    if block.get("memory"):
        spec = block["memory"]
        given = {"sides": tuple(int(side) for side in spec["sides"])} if "sides" in spec else {}
        if "cnn_max_side" in spec:
            given["cnn_max_side"] = int(spec["cnn_max_side"])
        memory = MemoryFigureSpec(
            _known("dataset", spec["dataset"], datasets, "figures.memory.dataset"),
            tuple(_known("method", m, methods, "figures.memory.methods") for m in spec["methods"]),
            **given,
        )
    return FiguresSpec(attention, lists["errorbars"], lists["spearman"], lists["views"], pareto, memory)
