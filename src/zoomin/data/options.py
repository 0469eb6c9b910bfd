"""Typed options for dataset builders: the one place that turns a config or command-line value into a type.

Options reach a builder from the workflow config (YAML: already typed, though a list may be written
``"a,b"``) or from the command line (``--param key=value``: always strings). A builder declares its
options as keyword-only parameters with type annotations; :func:`coerce_params` reads that
signature, refuses options the builder does not take and converts every value with
:func:`coerce_value`. The synthetic stand-ins, whose options are typed by their defaults, convert
through :func:`coerce_value` too. Every error is a :class:`~zoomin.errors.ConfigError` naming the
key (``construct.<option>`` or ``download.<option>``).
"""

from __future__ import annotations

import collections.abc
import inspect
import os
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

from zoomin.errors import ConfigError

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")
NONE_WORDS = ("", "none", "null")
_LIST_TYPES = (list, tuple, collections.abc.Sequence)


def parse_pairs(pairs: Iterable[str] | None) -> dict[str, str]:
    """``["k=v", ...]`` (the command line's ``--param``) -> ``{"k": "v"}``; values stay strings."""
    params: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError("--param", f"expected key=value, got {pair!r}")
        params[key.strip()] = value.strip()
    return params


def option_names(function: Callable[..., Any]) -> list[str]:
    """The options of a builder: its keyword-only parameters, in signature order."""
    return [
        name
        for name, parameter in inspect.signature(function).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    ]


def refuse_unknown(given: Iterable[str], accepted: Sequence[str], section: str, owner: str) -> None:
    """Raise a ConfigError naming ``<section>.<key>`` for the first key not in ``accepted``."""
    unknown = sorted(set(given) - set(accepted))
    if unknown:
        raise ConfigError(
            f"{section}.{unknown[0]}",
            f"{owner} does not take {', '.join(unknown)} (it takes: {', '.join(accepted) or 'nothing'})",
        )


def coerce_params(
    function: Callable[..., Any], params: Mapping[str, Any], section: str, owner: str
) -> dict[str, Any]:
    """``params`` checked and converted for ``function``'s keyword-only parameters.

    Unknown keys are refused (ConfigError ``<section>.<key>`` listing the accepted ones) unless
    ``function`` takes ``**kwargs``, in which case they pass through unconverted for the function to
    check (the synthetic source hands them to its stand-in). ``owner`` names the function in errors.
    """
    accepted = option_names(function)
    open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(function).parameters.values())
    if not open_ended:
        refuse_unknown(params, accepted, section, owner)
    hints = get_type_hints(function)
    return {
        key: coerce_value(f"{section}.{key}", value, hints.get(key, Any)) if key in accepted else value
        for key, value in params.items()
    }


def coerce_value(key: str, value: Any, annotation: Any) -> Any:
    """``value`` converted to ``annotation``; a ConfigError naming ``key`` if it cannot be.

    Supported: ``bool``, ``int``, ``float``, ``str``, ``Path``, ``Literal[...]`` (strings matched
    case-insensitively), ``X | None`` (``None``, ``""``, ``"none"`` and ``"null"`` are None),
    ``list[X]``, ``tuple[X, ...]`` and ``Sequence[X]`` (a YAML list or a comma-separated string;
    a list of numbers may also be written ``640x480``), and ``Any`` (passed through).
    """
    if annotation is Any:
        return value
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return _union(key, value, args)
    if origin is Literal:
        return _literal(key, value, args)
    if origin in _LIST_TYPES:
        items = [coerce_value(key, item, args[0] if args else Any) for item in _items(key, value, args)]
        return tuple(items) if origin is tuple else items
    convert = _SCALARS.get(annotation)
    if convert is None:
        raise TypeError(f"{key}: no conversion to {annotation!r}")  # a builder's annotation, not user input
    return convert(key, value)


def _union(key: str, value: Any, args: tuple[Any, ...]) -> Any:
    others = [arg for arg in args if arg is not type(None)]
    if len(others) != 1:
        raise TypeError(f"{key}: only 'X | None' unions are supported, got {args!r}")
    if type(None) in args and (value is None or (isinstance(value, str) and value.strip().lower() in NONE_WORDS)):
        return None
    return coerce_value(key, value, others[0])


def _literal(key: str, value: Any, allowed: tuple[Any, ...]) -> Any:
    if value in allowed and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in allowed:
        return value.strip().lower()
    raise ConfigError(key, f"must be one of {', '.join(map(str, allowed))}, got {value!r}")


def _items(key: str, value: Any, args: tuple[Any, ...]) -> list[Any]:
    if isinstance(value, str):
        numeric = bool(args) and args[0] in (int, float)
        pattern = r"[,x\s]+" if numeric else r","
        parts = re.split(pattern, value.strip().strip("[]() ") if numeric else value)
        return [part.strip() for part in parts if part.strip()]
    if isinstance(value, (list, tuple)):
        return list(value)
    raise ConfigError(key, f"must be a list or a comma-separated string, got {value!r}")


def _bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in TRUE_WORDS + FALSE_WORDS:
        return value.strip().lower() in TRUE_WORDS
    raise ConfigError(key, f"must be true or false, got {value!r}")


def _int(key: str, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            try:
                number = float(value)
            except ValueError:
                number = None
            if number is not None and number.is_integer():
                return int(number)
    raise ConfigError(key, f"must be an integer, got {value!r}")


def _float(key: str, value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise ConfigError(key, f"must be a number, got {value!r}")


def _str(key: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)  # YAML reads e.g. `train_set: 1` as a number
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise ConfigError(key, f"must be a string, got {value!r}")


def _path(key: str, value: Any) -> Path:
    if isinstance(value, (str, os.PathLike)) and str(value).strip():
        return Path(value)
    raise ConfigError(key, f"must be a path, got {value!r}")


_SCALARS: dict[Any, Callable[[str, Any], Any]] = {
    bool: _bool,
    int: _int,
    float: _float,
    str: _str,
    Path: _path,
}
