"""What the workflow makes beyond training runs: tables, figures, predictions and the learnability
sweep, and how the config's ``tables:``, ``figures:``, ``predict:`` and ``learnability:`` blocks are
read into them.

A table is a list of ``(dataset, method)`` rows (:class:`TableSpec`); the figures block names what
each figure shows (:class:`FiguresSpec`); the predict block, which trained runs predict on which
inputs (:class:`PredictionTarget`) and how (:class:`PredictSettings`); the learnability block, the
grid of generated datasets its methods train on (:class:`LearnabilitySpec`). Every name is checked
against the config's datasets and methods, and a bad one is a
:class:`zoomin.errors.ConfigError` naming its key.

No torch here (the Snakefile imports this module to plan the DAG).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from zoomin.config.records import ParamError, Params, param
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


# ---------------------------------------------------------------- the learnability sweep
LEARNABILITY_BLOCK = "Learnability"  # the generated datasets' block
LEARNABILITY_KIND = "parametric"  # the synthetic stand-in the sweep draws (zoomin.data.synthetic.parametric)
# Construction parameters the grid sets for each cell, with the key that sets them.
GRID_KEYS = {
    "ratio": "learnability.ratios",
    "n_train": "learnability.train_images",
    "n_val": "learnability.val_images",
    "n_test": "learnability.test_images",
    "seed": "learnability.seed",
    "kind": "learnability",
}


def _positive_list(kind: type, maximum: float | None = None) -> Any:
    """A check for a non-empty list of distinct positive numbers of ``kind`` (``maximum`` included)."""

    def check(value: Any) -> tuple:
        if not isinstance(value, (list, tuple)) or not value:
            raise ValueError(f"must be a non-empty list, got {value!r}")
        items = []
        for item in value:
            if isinstance(item, bool) or not isinstance(item, (int, float)) or (kind is int and item != int(item)):
                raise ValueError(f"must hold {kind.__name__}s, got {item!r}")
            if item <= 0 or (maximum is not None and item > maximum):
                raise ValueError(f"each must be in (0, {maximum if maximum is not None else 'inf'}], got {item!r}")
            items.append(kind(item))
        if len(set(items)) != len(items):
            raise ValueError(f"a value is listed twice: {list(value)}")
        return tuple(items)

    return check


def _seed_list(value: Any) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"must be a non-empty list of run seeds, got {value!r}")
    if any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in value) or len(set(value)) != len(value):
        raise ValueError(f"must be distinct integers >= 0, got {list(value)}")
    return tuple(value)


def _list_schema(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "minItems": 1, "uniqueItems": True, "items": item}


@dataclass(frozen=True)
class LearnabilityGrid(Params):
    """The learnability sweep's grid (docs/learnability.md): one generated dataset of the
    ``parametric`` stand-in per (object-to-image ratio, training-set size), on which every method
    of the sweep trains once per seed. Every cell has the same validation and test sizes, drawn
    from the same seed, so a ratio's cells test on the same images."""

    ratios: tuple[float, ...] = param(
        (),
        check=_positive_list(float, 0.5),
        schema=_list_schema({"type": "number", "exclusiveMinimum": 0, "maximum": 0.5}),
        doc="object area / image area, one dataset row per value",
    )
    train_images: tuple[int, ...] = param(
        (), check=_positive_list(int), schema=_list_schema({"type": "integer", "minimum": 2, "multipleOf": 2}),
        doc="training-set sizes (even: balanced), one dataset column per value",
    )
    seeds: tuple[int, ...] = param(
        (0, 1), check=_seed_list, schema=_list_schema({"type": "integer", "minimum": 0}),
        doc="run seeds: every method trains runs s<seed> on every cell",
    )
    # At least 2: without a validation split a run carves one out of its training images
    # (zoomin.data.folds), and the cell would train on fewer images than it says.
    val_images: int = param(16, minimum=2, doc="validation images of every cell (even); they pick a run's best epoch")
    test_images: int = param(64, minimum=2, doc="test images of every cell (even); a cell's interval pools its runs'")
    seed: int = param(0, minimum=0, doc="seed the stand-in is drawn from, the same in every cell")

    def check(self) -> None:
        if not self.ratios:
            raise ParamError("ratios", "give at least one object-to-image ratio")
        if not self.train_images:
            raise ParamError("train_images", "give at least one training-set size")
        for name in ("val_images", "test_images"):
            if getattr(self, name) % 2:
                raise ParamError(name, f"must be even (balanced classes), got {getattr(self, name)}")
        odd = [n for n in self.train_images if n % 2]
        if odd:
            raise ParamError("train_images", f"must be even (balanced classes), got {odd}")


@dataclass(frozen=True)
class LearnabilityCell:
    """One cell of the grid: its generated dataset, object-to-image ratio and training-set size."""

    dataset: str
    ratio: float
    train_images: int


@dataclass(frozen=True)
class LearnabilitySpec:
    """The config's ``learnability:`` block, checked: the grid, the sweep's own methods (name ->
    ``{model, label, params}``; no ``training``: every method gets the block's ``training``, the
    same budget in every cell), the stand-in's other construction parameters (``construct``, e.g.
    ``image_size`` or ``background``) and the model parameters per model type."""

    grid: LearnabilityGrid
    methods: dict[str, dict[str, Any]]
    construct: dict[str, Any]
    model_params: dict[str, dict[str, Any]]
    training: dict[str, Any]

    def cells(self) -> tuple[LearnabilityCell, ...]:
        """Every cell, ratios in the order given (largest first, as the config lists them), then sizes."""
        return tuple(
            LearnabilityCell(cell_name(ratio, size), ratio, size)
            for ratio in self.grid.ratios
            for size in self.grid.train_images
        )

    def runs(self) -> tuple[str, ...]:
        return tuple(f"s{seed}" for seed in self.grid.seeds)

    def image_size(self) -> int:
        """The side of every image of the sweep (px): its ``construct`` or the stand-in's default."""
        from zoomin.data.synthetic.parametric import DEFAULTS

        return int(self.construct.get("image_size", DEFAULTS["image_size"]))

    def construct_params(self, cell: LearnabilityCell) -> dict[str, Any]:
        """The ``construct:`` of a cell's dataset (the synthetic source's options)."""
        grid = self.grid
        return {
            "kind": LEARNABILITY_KIND, "seed": grid.seed, "ratio": cell.ratio, "n_train": cell.train_images,
            "n_val": grid.val_images, "n_test": grid.test_images, **self.construct,
        }


def cell_name(ratio: float, train_images: int) -> str:
    """The generated dataset of a cell: ``learn_r0p01_n64`` for ratio 0.01 and 64 training images
    (``p`` for the decimal point: dataset names are plain words, as wildcards and file names)."""
    text = f"{ratio:.12f}".rstrip("0").rstrip(".").replace(".", "p")
    return f"learn_r{text}_n{train_images}"


def read_learnability(
    block: Mapping[str, Any] | None, methods: Mapping[str, Any], datasets: Mapping[str, Any]
) -> LearnabilitySpec | None:
    """The config's ``learnability:`` block as a :class:`LearnabilitySpec` (None without one); every
    value is checked here, so a bad one is refused naming its ``learnability.`` key before any job runs."""
    if not block:
        return None
    block = dict(block)
    try:
        grid = LearnabilityGrid.from_mapping(
            {key: block[key] for key in (f.name for f in dataclasses.fields(LearnabilityGrid)) if key in block}
        )
    except ParamError as error:
        raise ConfigError(f"learnability.{error.field}", error.problem) from None
    sweep_methods = {name: dict(method) for name, method in (block.get("methods") or {}).items()}
    if not sweep_methods:
        raise ConfigError("learnability.methods", "give at least one method")
    for name in sweep_methods:
        if name in methods:
            raise ConfigError(
                f"learnability.methods.{name}", f"'{name}' is a method of `methods:` too; give the sweep's another name"
            )
    construct = dict(block.get("construct") or {})
    for key in construct:
        if key in GRID_KEYS:
            raise ConfigError(f"learnability.construct.{key}", f"is set by the grid ({GRID_KEYS[key]})")
    spec = LearnabilitySpec(
        grid=grid,
        methods=sweep_methods,
        construct=construct,
        model_params={key: dict(value or {}) for key, value in (block.get("model_params") or {}).items()},
        training=dict(block.get("training") or {}),
    )
    for cell in spec.cells():
        if cell.dataset in datasets:
            raise ConfigError("learnability", f"its dataset '{cell.dataset}' is also in `datasets:`; rename that one")
    _check_cells(spec)
    _check_models(spec)
    return spec


def _check_cells(spec: LearnabilitySpec) -> None:
    """Every cell's stand-in parameters, checked as the construction will check them, the key
    renamed to the one in the ``learnability:`` block that sets it."""
    # Imported here: the stand-ins load numpy and Pillow, which planning a DAG without a sweep never needs.
    from zoomin.data.synthetic import stand_in
    from zoomin.data.synthetic.common import resolve_params

    renamed = {f"construct.{key}": where for key, where in GRID_KEYS.items()}
    for cell in spec.cells():
        params = spec.construct_params(cell)
        params = {key: value for key, value in params.items() if key not in ("kind", "seed")}
        try:
            resolve_params(stand_in(LEARNABILITY_KIND), params)
        except ConfigError as error:
            key = renamed.get(error.key, error.key.replace("construct.", "learnability.construct.", 1))
            raise ConfigError(key, f"{error.problem} (cell {cell.dataset})") from None


def _check_models(spec: LearnabilitySpec) -> None:
    """Every sweep method's model parameters and the sweep's training settings."""
    from zoomin.config.run import TrainingConfig
    from zoomin.models.registry import model_type

    for name, method in spec.methods.items():
        given = dict(method.get("params") or {})
        try:
            model_type(method["model"]).make_params({**spec.model_params.get(method["model"], {}), **given})
        except ParamError as error:
            where = f"methods.{name}.params" if error.field in given else f"model_params.{method['model']}"
            raise ConfigError(f"learnability.{where}.{error.field}", error.problem) from None
    try:
        TrainingConfig.from_mapping(spec.training)
    except ParamError as error:
        raise ConfigError(f"learnability.training.{error.field}", error.problem) from None
