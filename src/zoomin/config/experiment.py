"""The whole configuration as one typed record, :class:`Experiment`, and the queries the workflow asks of it.

:func:`experiment` turns a workflow config (``config/config.yaml`` and friends, already checked
against the schema by :mod:`zoomin.config.load`) into an :class:`Experiment`: its datasets, methods and
settings, with every default filled in. ``Experiment.run(dataset, method, run)`` gives the
:class:`~zoomin.config.run.RunSpec` of one training run, which the Snakemake rules, the ``zoomin``
command line and the benchmarks all hand to :func:`zoomin.training.loop.train` and
:func:`zoomin.training.evaluate.evaluate`.

Which runs exist: every method of a dataset's ``methods`` (its Table 1 or 2 block), plus the
``(dataset, method)`` rows of the config's ``tables:`` block and what its ``figures:`` block names
(:mod:`zoomin.config.outputs`); a method on a dataset is one set of runs wherever it appears
(:meth:`Experiment.trained`).

Every default is written once, in the records of :mod:`zoomin.config.run` or in the model
registry's parameter records (:mod:`zoomin.models.params`); the config schema is generated from
them. Training settings merge in this order: ``TrainingConfig`` defaults < ``training_defaults`` <
``datasets.<d>.training`` < ``methods.<m>.training``. Model parameters: the record's defaults <
``datasets.<d>.model_params.<model type>`` < ``methods.<m>.params``. An invalid value is a
:class:`zoomin.errors.ConfigError` naming the full key.

No torch here (the Snakefile imports this module to plan the DAG).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from zoomin.config.outputs import (
    LEARNABILITY_BLOCK,
    FiguresSpec,
    LearnabilitySpec,
    PredictionTarget,
    PredictSettings,
    TableSpec,
    read_figures,
    read_learnability,
    read_prediction_targets,
    read_tables,
)
from zoomin.config.records import ParamError, Params
from zoomin.config.run import MeasureConfig, ModelSpec, RunSettings, RunSpec, TrainingConfig, TrainResources
from zoomin.config.runs import parse_run, run_ids, run_seed
from zoomin.errors import ConfigError
from zoomin.models.registry import MODEL_TYPES, model_type

DEFAULT_SLIDE_TILE = 256  # tissue-tile side of a slide cache when no model of the dataset sets one


@dataclass(frozen=True)
class MethodSpec:
    """One entry of the config's ``methods:``: a model type, its row label and what it overrides.

    ``params`` and ``training`` hold the overrides as the config gives them (model parameters and
    training settings by name); they become typed, checked records when merged for a dataset
    (:meth:`Experiment.model`, :meth:`Experiment.training`)."""

    name: str
    model: str  # a model type of zoomin.models.registry
    label: str
    params: Mapping[str, Any] = field(default_factory=dict)
    training: Mapping[str, Any] = field(default_factory=dict)
    runs: int | None = None  # at most the first this many runs of each dataset; None: all


@dataclass(frozen=True)
class DatasetSpec:
    """One entry of the config's ``datasets:``: its source, runs, methods and what it overrides.

    ``model_params`` (per model type) and ``training`` are overrides as given, merged and checked
    like :class:`MethodSpec`'s; ``construct`` and ``download`` are the data source's options,
    checked by its :class:`zoomin.data.sources.Source` record."""

    name: str
    block: str  # the row group in its table (the paper's dataset name)
    table: str | None  # None: in no per-dataset table; its runs come from `tables:` and `figures:`
    source: str  # a source of zoomin.data.sources
    runs: tuple[str, ...]  # run ids (zoomin.config.runs)
    n_folds: int | None  # cross-validation folds; None: a fixed split with seeds
    methods: tuple[str, ...]
    reference_class: str | None  # the class without the object (contrastive loss, attention figure)
    model_params: Mapping[str, Mapping[str, Any]]
    training: Mapping[str, Any]
    construct: Mapping[str, Any]
    download: Mapping[str, Any]


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
    predict: PredictSettings = field(default_factory=PredictSettings)
    predictions: tuple[PredictionTarget, ...] = ()
    figures: FiguresSpec = field(default_factory=FiguresSpec)
    extra_tables: dict[str, TableSpec] = field(default_factory=dict)  # the config's `tables:` block
    learnability: LearnabilitySpec | None = None  # the `learnability:` block; its datasets are in `datasets`

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
        """Tissue-tile side of the dataset's slide caches: the first of its methods that cuts tiles."""
        return self.tile_size(dataset, self.methods_of(dataset)) or DEFAULT_SLIDE_TILE

    def tile_size(self, dataset: str, methods: Sequence[str]) -> int | None:
        """Tile side of the first of ``methods`` whose model cuts the image into tiles (its record's
        ``tile_size``); ``None`` if none does."""
        for method in methods:
            size = self.model(dataset, method).params.tile_size()
            if size is not None:
                return size
        return None

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
        """The rows of table ``name`` as plain data (:class:`zoomin.report.tables.TableRow` fields): dataset,
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
        return [(d, m, run) for d, m in table.rows for run in self.runs_used(d, m)[: table.runs]]

    def runs_of(self, pairs: list[tuple[str, str]]) -> list[tuple[str, str, str]]:
        """``(dataset, method, run)`` of every run of the given ``(dataset, method)`` pairs."""
        return [(d, m, run) for d, m in pairs for run in self.runs_used(d, m)]

    def runs_used(self, dataset: str, method: str) -> tuple[str, ...]:
        """The runs of ``method`` on ``dataset`` that are trained: the dataset's runs, at most the
        method's first ``runs`` (``methods.<m>.runs``), and only the first ``runs`` of a table's
        (``tables.<name>.runs``) when only tables that take that many show the pair."""
        runs = self.datasets[dataset].runs[: self.methods[method].runs]
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


def add_learnability(
    spec: LearnabilitySpec | None, methods: dict[str, MethodSpec], datasets: dict[str, DatasetSpec]
) -> None:
    """Add the learnability sweep's methods and one generated dataset per grid cell (docs/learnability.md)
    to ``methods`` and ``datasets``: every cell is an ordinary dataset whose runs are ordinary runs,
    in no table; every method has the sweep's ``training`` (no method overrides it)."""
    if spec is None:
        return
    for name, method in spec.methods.items():
        methods[name] = MethodSpec(name, method["model"], method["label"], dict(method.get("params") or {}))
    for cell in spec.cells():
        datasets[cell.dataset] = DatasetSpec(
            name=cell.dataset,
            block=LEARNABILITY_BLOCK,
            table=None,
            source="synthetic",
            runs=spec.runs(),
            n_folds=None,
            methods=tuple(spec.methods),
            reference_class="negative",
            model_params={key: dict(value) for key, value in spec.model_params.items()},
            training=dict(spec.training),
            construct=spec.construct_params(cell),
            download={},
        )


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
            runs=method.get("runs"),
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
    learnability = read_learnability(config.get("learnability"), methods, datasets)
    add_learnability(learnability, methods, datasets)
    predict = config.get("predict") or {}
    figures = read_figures(config.get("figures") or {}, methods, datasets)
    extra_tables = read_tables(config.get("tables") or {}, methods, datasets)
    result = Experiment(
        seed=int(config["seed"]),
        settings=_record(RunSettings, {k: config[k] for k in ("device", "mixed_precision") if k in config}, ""),
        measure=_record(MeasureConfig, config.get("measure"), "measure"),
        resources=_record(TrainResources, (config.get("resources") or {}).get("train"), "resources.train"),
        training_defaults=dict(config.get("training_defaults") or {}),
        methods=methods,
        datasets=datasets,
        predict=_record(PredictSettings, {k: v for k, v in predict.items() if k != "datasets"}, "predict"),
        predictions=read_prediction_targets(predict.get("datasets") or {}, datasets),
        figures=figures,
        extra_tables=extra_tables,
        learnability=learnability,
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
