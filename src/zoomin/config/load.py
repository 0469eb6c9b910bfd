"""Reading the workflow configuration: one path for the Snakefile and the command line.

:func:`prepare` checks a config dict against the JSON schema and builds the typed
:class:`zoomin.config.experiment.Experiment` from it (which checks what the schema cannot: rules between model
parameters, methods that exist, run ids); :func:`load` does the same for a YAML file. A bad
value is refused with one :class:`zoomin.errors.ConfigError` naming the key path, the value and
what is allowed.

The schema ships with the package (``zoomin/config/schemas/config.schema.yaml``); its parts that typed
records own (training settings, model parameters, names of model types and sources) are
generated from those records by :func:`schema`.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from zoomin.config.experiment import SETTING_NAMES, Experiment, experiment
from zoomin.config.outputs import TABLES, LearnabilityGrid, PredictSettings
from zoomin.config.run import MeasureConfig, RunSettings, TrainingConfig, TrainResources
from zoomin.errors import ConfigError
from zoomin.models.registry import MODEL_TYPES

MAX_MESSAGE = 240  # characters of a schema message before it is shortened


def _source_names() -> list[str]:
    from zoomin.data.sources import SOURCES

    return list(SOURCES)


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    """The config's JSON schema, with its generated parts filled in."""
    text = resources.files("zoomin.config").joinpath("schemas", "config.schema.yaml").read_text(encoding="utf-8")
    result = yaml.safe_load(text)
    definitions = result["definitions"]
    definitions["training"] = TrainingConfig.json_schema()
    definitions["measure"] = MeasureConfig.json_schema()
    definitions["resources_train"] = TrainResources.json_schema()
    definitions["model_type"] = {"type": "string", "enum": list(MODEL_TYPES)}
    definitions["model_params"] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {name: record.params.json_schema() for name, record in MODEL_TYPES.items()},
    }
    definitions["source"] = {"type": "string", "enum": _source_names()}
    definitions["table"] = {"type": "string", "enum": list(TABLES)}
    predict = PredictSettings.json_schema()
    predict["properties"]["datasets"] = definitions["predict_datasets"]
    predict["description"] = result["properties"]["predict"].get("description", "")
    result["properties"]["predict"] = predict
    definitions["setting"] = {"type": "string", "enum": sorted(SETTING_NAMES)}
    result["properties"]["learnability"]["properties"].update(LearnabilityGrid.json_schema()["properties"])
    result["properties"].update(RunSettings.json_schema()["properties"])
    return result


def validate(config: Any) -> None:
    """Check ``config`` against the schema; the error names the key path of the first problem."""
    if not isinstance(config, dict):
        raise ConfigError("<top level>", f"the config must be a mapping of keys to values, got {type(config).__name__}")
    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    if errors:
        error = jsonschema.exceptions.best_match(errors)
        key = ".".join(str(part) for part in error.absolute_path) or "<top level>"
        raise ConfigError(key, _describe(error))


def _describe(error: jsonschema.ValidationError) -> str:
    """The schema's message, shortened where it would quote a whole block."""
    if len(error.message) <= MAX_MESSAGE:
        return error.message
    if error.validator == "oneOf":
        return "is not valid: it matches none of the allowed forms (see the schema's description)"
    return error.message[: MAX_MESSAGE - 3] + "..."


def prepare(config: Any) -> Experiment:
    """Validate ``config`` and build its :class:`~zoomin.config.experiment.Experiment` (ConfigError if invalid)."""
    validate(config)
    return experiment(config)


def read_yaml(path: str | Path) -> Any:
    """The contents of a YAML config file (ConfigError naming the file if unreadable)."""
    path = Path(path)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(str(path), f"cannot read the config file: {error}") from error


def load(path: str | Path) -> Experiment:
    """Read, validate and type a YAML config file."""
    return prepare(read_yaml(path))
