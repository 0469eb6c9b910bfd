"""Typed parameter records: one dataclass per set of parameters, written once.

A record is a frozen dataclass deriving from :class:`Params` whose fields are declared with
:func:`param`: the default, and what a value may be (bounds, choices, or a checker). From that one
declaration come

* the checks when a record is made (each field converted and checked, then the record's own
  :meth:`Params.check` for rules that relate fields), raising :class:`ParamError` naming the field;
* :meth:`Params.from_mapping`, which refuses unknown keys and lists the known ones;
* :meth:`Params.json_schema`, the JSON schema of the record's config block, so the workflow's
  config schema never restates a default or a bound.

No torch here: the Snakefile imports the records while it plans the DAG.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

P = TypeVar("P", bound="Params")


class ParamError(ValueError):
    """A bad value of one field; ``field`` is its name (the caller adds the config path)."""

    def __init__(self, field: str, problem: str):
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


def param(
    default: Any,
    *,
    minimum: float | None = None,
    exclusive_minimum: float | None = None,
    maximum: float | None = None,
    choices: Sequence[Any] | None = None,
    check: Callable[[Any], Any] | None = None,
    schema: dict[str, Any] | None = None,
    doc: str = "",
) -> Any:
    """A dataclass field with its default and constraints.

    ``check`` (a callable returning the cleaned value or raising ``ValueError``) and ``schema``
    (its JSON schema) are for values the plain type, bounds and choices cannot describe.
    """
    metadata = {
        "minimum": minimum,
        "exclusive_minimum": exclusive_minimum,
        "maximum": maximum,
        "choices": tuple(choices) if choices is not None else None,
        "check": check,
        "schema": schema,
        "doc": doc,
    }
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class Params:
    """Base of every parameter record; see the module docstring."""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for field in dataclasses.fields(self):
            value = _converted(field, hints[field.name], getattr(self, field.name))
            object.__setattr__(self, field.name, value)
        self.check()

    def check(self) -> None:
        """Rules that relate fields; raise :class:`ParamError` naming the field to change."""

    @classmethod
    def from_mapping(cls: type[P], values: Mapping[str, Any] | None) -> P:
        """A record from a config mapping; unknown keys are refused, missing ones take defaults."""
        values = dict(values or {})
        known = [field.name for field in dataclasses.fields(cls)]
        for key in values:
            if key not in known:
                raise ParamError(str(key), f"not a parameter here (known: {', '.join(known)})")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return {field.name: _plain(getattr(self, field.name)) for field in dataclasses.fields(self)}

    def replace(self: P, **changes: Any) -> P:
        return dataclasses.replace(self, **changes)

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        """The JSON schema of a config block of this record: every key optional, none unknown."""
        hints = typing.get_type_hints(cls)
        properties = {field.name: _field_schema(field, hints[field.name]) for field in dataclasses.fields(cls)}
        return {"type": "object", "additionalProperties": False, "properties": properties}


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    return value


def _optional(hint: Any) -> tuple[Any, bool]:
    """``X | None`` -> ``(X, True)``; anything else -> ``(hint, False)``."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        members = [member for member in typing.get_args(hint) if member is not type(None)]
        if len(members) == 1 and len(typing.get_args(hint)) == 2:
            return members[0], True
    return hint, False


def _converted(field: dataclasses.Field, hint: Any, value: Any) -> Any:
    meta = field.metadata
    if meta.get("check") is not None:
        try:
            return meta["check"](value)
        except ValueError as error:
            raise ParamError(field.name, str(error)) from None
    base, nullable = _optional(hint)
    if value is None:
        if nullable:
            return None
        raise ParamError(field.name, "must be given (null is not allowed)")
    value = _typed(field.name, base, value)
    if meta.get("choices") is not None and value not in meta["choices"]:
        raise ParamError(field.name, f"must be one of {', '.join(map(str, meta['choices']))}, got {value!r}")
    if meta.get("minimum") is not None and value < meta["minimum"]:
        raise ParamError(field.name, f"must be at least {meta['minimum']}, got {value!r}")
    if meta.get("exclusive_minimum") is not None and value <= meta["exclusive_minimum"]:
        raise ParamError(field.name, f"must be above {meta['exclusive_minimum']}, got {value!r}")
    if meta.get("maximum") is not None and value > meta["maximum"]:
        raise ParamError(field.name, f"must be at most {meta['maximum']}, got {value!r}")
    return value


def _typed(name: str, kind: Any, value: Any) -> Any:
    if kind is bool:
        if not isinstance(value, bool):
            raise ParamError(name, f"must be true or false, got {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
            raise ParamError(name, f"must be an integer, got {value!r}")
        return int(value)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamError(name, f"must be a number, got {value!r}")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise ParamError(name, f"must be a string, got {value!r}")
        return value
    raise TypeError(f"field {name}: no conversion for {kind!r}; give it a check=")


_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string"}


def _field_schema(field: dataclasses.Field, hint: Any) -> dict[str, Any]:
    meta = field.metadata
    if meta.get("schema") is not None:
        schema = dict(meta["schema"])
    else:
        base, nullable = _optional(hint)
        kind = _JSON_TYPES[base]
        schema = {"type": [kind, "null"] if nullable else kind}
        if meta.get("choices") is not None:
            schema["enum"] = list(meta["choices"]) + ([None] if nullable else [])
        for key, name in (("minimum", "minimum"), ("exclusive_minimum", "exclusiveMinimum"), ("maximum", "maximum")):
            if meta.get(key) is not None:
                schema[name] = meta[key]
    if meta.get("doc"):
        schema["description"] = meta["doc"]
    return schema
