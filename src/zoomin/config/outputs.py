"""What the workflow makes beyond training runs: tables, figures and predictions, and how the
config's ``tables:``, ``figures:`` and ``predict:`` blocks are read into them.

A table is a list of ``(dataset, method)`` rows (:class:`TableSpec`); the figures block names what
each figure shows (:class:`FiguresSpec`); the predict block, which trained runs predict on which
inputs (:class:`PredictionTarget`) and how (:class:`PredictSettings`). Every name is checked
against the config's datasets and methods, and a bad one is a
:class:`zoomin.errors.ConfigError` naming its key.

No torch here (the Snakefile imports this module to plan the DAG).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from zoomin.config.records import Params, param
from zoomin.config.run import SAMPLING_AT_TEST
from zoomin.errors import ConfigError

if TYPE_CHECKING:
    from zoomin.config.experiment import DatasetSpec

TABLES = ("table1", "table2")  # the tables a dataset's `table:` puts its block in (rows: its methods)


@dataclass(frozen=True)
class PredictSettings(Params):
    """How ``zoomin predict`` (and the workflow's ``predict`` rule) applies a trained model."""

    sampling: str | None = param(
        None, choices=SAMPLING_AT_TEST, doc="sample (seeded) or topk; null: the run's sampling_at_test"
    )
    seed: int | None = param(None, minimum=0, doc="seed of the draws; null: the run's seed (as its evaluation)")
    draws: int | None = param(
        None, minimum=1, doc="test-time draws averaged per image; null: the run's training.test_draws (as evaluated)"
    )
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


def read_prediction_targets(
    blocks: Mapping[str, Any], datasets: Mapping[str, DatasetSpec]
) -> tuple[PredictionTarget, ...]:
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


def read_tables(
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


def read_figures(
    block: Mapping[str, Any], methods: Mapping[str, Any], datasets: Mapping[str, DatasetSpec]
) -> FiguresSpec:
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
