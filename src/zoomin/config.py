"""Reading the workflow configuration: schema validation, cross-field checks, derived values.

The JSON schema (workflow/schemas/config.schema.yaml) checks each value on its own; :func:`check`
adds the rules that relate values (``s1 < s2``, ``subtile <= tile``, methods that exist, ...). Both
raise errors that name the config key. The helpers below turn a dataset's config into what the
rules need: run ids, the model type and parameters of a method, and the view scales to cache.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import yaml

from zoomin.errors import ConfigError

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"

DEFAULT_TRAINING: dict[str, Any] = {
    "epochs": 10,
    "batch_size": 8,
    "lr": 1e-3,
    "weight_decay": 1e-5,
    "step_size": 30,
    "gamma": 0.9,
    "clip_grad_norm": 5.0,
    "entropy_lambda": 1e-5,
    "contrastive_start": None,
    "mask_loss_weight": 0.0,
    "class_weights": None,
    "sampling_at_test": "sample",
}


def load(path: str | Path, schema_path: str | Path = SCHEMA_PATH) -> dict[str, Any]:
    """Load a YAML config file, validate it against the schema and :func:`check` it."""
    path = Path(path)
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(str(path), f"cannot read the config file: {error}") from error
    validate(config, schema_path)
    check(config)
    return config


def validate(config: dict[str, Any], schema_path: str | Path = SCHEMA_PATH) -> None:
    """Validate against the JSON schema; the error names the offending key path."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        error = errors[0]
        key = ".".join(str(part) for part in error.absolute_path) or "<top level>"
        raise ConfigError(key, error.message)


def check(config: dict[str, Any]) -> None:
    """Cross-field checks the schema cannot express."""
    methods = config["methods"]
    for dataset, ds in config["datasets"].items():
        prefix = f"datasets.{dataset}"
        for method in ds["methods"]:
            if method not in methods:
                raise ConfigError(
                    f"{prefix}.methods", f"unknown method '{method}' (known: {', '.join(methods)})"
                )
            model_type = methods[method]["model"]
            params = model_params(config, dataset, method)
            if model_type == "zoomin":
                _check_zoomin(f"{prefix}.model_params.zoomin", params)
            if model_type == "ats" and params.get("patch") is None:
                raise ConfigError(f"{prefix}.model_params.ats.patch", "is required for ATS")
    attention_method = config.get("figures", {}).get("attention_method")
    if attention_method is not None and attention_method not in methods:
        raise ConfigError("figures.attention_method", f"unknown method '{attention_method}'")


def _check_zoomin(key: str, params: dict[str, Any]) -> None:
    for name in ("tile", "subtile", "s1", "s2", "n"):
        if name not in params:
            raise ConfigError(f"{key}.{name}", "is required for Zoom-In")
    if not params["s1"] < 1:
        raise ConfigError(f"{key}.s1", f"must be below 1, got {params['s1']}")
    if not params["s2"] > params["s1"]:
        raise ConfigError(f"{key}.s2", f"must be larger than s1 ({params['s1']}), got {params['s2']}")
    if params["subtile"] > params["tile"]:
        raise ConfigError(
            f"{key}.subtile", f"sub-tile {params['subtile']} is larger than the tile {params['tile']}"
        )
    if round(params["tile"] * params["s1"]) < 1:
        raise ConfigError(f"{key}.s1", "a tile is less than one pixel wide in the stage-1 view")


def run_ids(dataset_config: dict[str, Any]) -> list[str]:
    """Run ids of a dataset: ``r<repetition>f<fold>`` for cross-validation, ``s<seed>`` otherwise."""
    runs = dataset_config["runs"]
    if "folds" in runs:
        return [
            f"r{rep}f{fold}"
            for rep in range(runs.get("repetitions", 1))
            for fold in range(runs["folds"])
        ]
    return [f"s{seed}" for seed in runs["seeds"]]


def parse_run(run: str) -> dict[str, int]:
    """``r1f3`` -> ``{"repetition": 1, "fold": 3}``; ``s2`` -> ``{"seed": 2}``."""
    if run.startswith("s"):
        return {"seed": int(run[1:])}
    rep, fold = run[1:].split("f")
    return {"repetition": int(rep), "fold": int(fold)}


def run_seed(config: dict[str, Any], run: str) -> int:
    """The RNG seed of one run: the global seed plus the run's own seed/fold/repetition."""
    parts = parse_run(run)
    return int(config["seed"]) * 1000 + parts.get("seed", 0) + 100 * parts.get("repetition", 0) + parts.get("fold", 0)


def model_params(config: dict[str, Any], dataset: str, method: str) -> dict[str, Any]:
    """Dataset-level parameters of the method's model type, overridden by the method's own."""
    method_config = config["methods"][method]
    model_type = method_config["model"]
    params = dict(config["datasets"][dataset].get("model_params", {}).get(model_type, {}))
    params.update(method_config.get("params", {}))
    return params


def training(config: dict[str, Any], dataset: str, method: str | None = None) -> dict[str, Any]:
    """Training hyper-parameters: defaults < ``training_defaults`` < dataset < method overrides."""
    merged = dict(DEFAULT_TRAINING)
    merged.update(config.get("training_defaults", {}) or {})
    merged.update(config["datasets"][dataset].get("training", {}) or {})
    if method is not None:
        merged.update(config["methods"][method].get("training", {}) or {})
    return merged


def view_scales(config: dict[str, Any], dataset: str) -> list[float]:
    """Every view scale below 1 that the dataset's methods read, for the HDF5 cache."""
    scales: set[float] = set()
    for method in config["datasets"][dataset]["methods"]:
        params = model_params(config, dataset, method)
        for key in ("s1", "s2", "scale"):
            if key in params and float(params[key]) < 1:
                scales.add(float(params[key]))
    return sorted(scales)
