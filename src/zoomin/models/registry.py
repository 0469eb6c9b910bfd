"""Models built by name from config parameters, with defaults and validation.

``build_model(model_type, num_classes, **params)``; parameters not given take the colon-cancer
defaults of DESIGN.md section 5. An unknown model type, an unknown parameter or a bad value raises
:class:`zoomin.errors.ConfigError` naming the key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from zoomin.errors import ConfigError
from zoomin.models.ats import ATSNet
from zoomin.models.attention import ACTIVATIONS
from zoomin.models.cnn import efficientnet, small_resnet
from zoomin.models.features import FEATURE_NETS
from zoomin.models.zoomin_net import ZoomInNet


@dataclass(frozen=True)
class Param:
    """One parameter: its default and a checker returning the cleaned value or raising ValueError."""

    default: Any
    check: Callable[[Any], Any]


def positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise ValueError(f"must be a positive integer, got {value!r}")
    if int(value) < 1:
        raise ValueError(f"must be a positive integer, got {value!r}")
    return int(value)


def unit_scale(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ValueError(f"must be a number in (0, 1], got {value!r}")
    return float(value)


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, got {value!r}")
    return value


def one_of(choices: Any) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if value not in choices:
            raise ValueError(f"must be one of {sorted(choices)}, got {value!r}")
        return value

    return check


FEATURE = Param("lenet", one_of(FEATURE_NETS))
ACTIVATION = Param("tanh", one_of(ACTIVATIONS))

PARAMS: dict[str, dict[str, Param]] = {
    "zoomin": {
        "tile": Param(250, positive_int),
        "subtile": Param(27, positive_int),
        "s1": Param(0.1, unit_scale),
        "s2": Param(0.2, unit_scale),
        "n": Param(10, positive_int),
        "feature": FEATURE,
        "attention_activation": ACTIVATION,
    },
    "ats": {
        "scale": Param(0.2, unit_scale),
        "patch": Param(27, positive_int),
        "n": Param(10, positive_int),
        "feature": FEATURE,
        "replace": Param(False, boolean),
        "attention_activation": ACTIVATION,
    },
    "cnn": {"scale": Param(1.0, unit_scale)},
    "efficientnet_b0": {"scale": Param(1.0, unit_scale)},
}

BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "zoomin": ZoomInNet,
    "ats": ATSNet,
    "cnn": small_resnet,
    "efficientnet_b0": efficientnet,
}

MODEL_TYPES = tuple(BUILDERS)


def resolve_params(model_type: str, params: dict[str, Any]) -> dict[str, Any]:
    """Defaults filled in and every value checked; raises ConfigError naming the bad key."""
    if model_type not in PARAMS:
        raise ConfigError("model_type", f"unknown model type {model_type!r}; choose one of {MODEL_TYPES}")
    spec = PARAMS[model_type]
    for key in params:
        if key not in spec:
            raise ConfigError(key, f"not a parameter of {model_type!r}; known: {sorted(spec)}")
    resolved = {}
    for key, param in spec.items():
        try:
            resolved[key] = param.check(params.get(key, param.default))
        except ValueError as error:
            raise ConfigError(key, str(error)) from None
    if model_type == "zoomin" and round(resolved["tile"] * resolved["s1"]) < 1:
        raise ConfigError("s1", "tile * s1 must be at least one view pixel")
    return resolved


def build_model(model_type: str, num_classes: int, **params: Any) -> nn.Module:
    """A fresh model of ``model_type`` (one of :data:`MODEL_TYPES`) with ``num_classes`` outputs."""
    try:
        num_classes = positive_int(num_classes)
    except ValueError as error:
        raise ConfigError("num_classes", str(error)) from None
    resolved = resolve_params(model_type, params)
    return BUILDERS[model_type](num_classes, **resolved)
