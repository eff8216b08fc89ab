"""Typed conversion of plain TOML data into frozen dataclasses.

Recipes are data: ``tomllib`` gives nested dicts, and :func:`build` turns one into a dataclass, checking every
key against the dataclass's fields and every value against the field's annotation (``int``, ``float``,
``bool``, ``str``, ``Literal[...]``, ``list[T]``, ``tuple[T, ...]``, ``dict[str, Any]``, ``X | None`` and nested
dataclasses). Errors name the full key (``train.epochs``) and what is allowed. Modalities use the same function
for their own sections, so their errors read the same.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from aip.errors import RecipeError

T = TypeVar("T")

_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _describe(tp: Any) -> str:
    origin = get_origin(tp)
    if tp in _NAMES:
        return _NAMES[tp]
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (list, tuple):
        return "a list"
    if origin is dict:
        return "a table"
    if dataclasses.is_dataclass(tp):
        return "a table"
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in get_args(tp) if a is not type(None))
    return str(tp)


def _convert(value: Any, tp: Any, key: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, key)
            except RecipeError as e:
                errors.append(e)
        for e in errors:  # a value of the right type but out of range says so (e.g. a float that is nan)
            if f"recipe key {key}: expected " not in str(e):
                raise e
        raise RecipeError(f"recipe key {key}: expected {_describe(tp)}, got {value!r}")
    if origin is Literal:
        if value in get_args(tp):
            return value
        raise RecipeError(f"recipe key {key}: {value!r} is not allowed; choose {_describe(tp)}")
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):  # TOML has nan and inf, and 1e400 reads as inf
                raise RecipeError(f"recipe key {key}: must be a finite number, got {value!r}")
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif origin is list:
        if isinstance(value, (list, tuple)):
            (arg,) = get_args(tp) or (Any,)
            return [_convert(v, arg, f"{key}[{i}]") for i, v in enumerate(value)]
    elif origin is tuple:
        if isinstance(value, (list, tuple)):
            args = get_args(tp)
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(_convert(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
            if len(value) != len(args):
                raise RecipeError(f"recipe key {key}: expected a list of {len(args)} values, got {value!r}")
            return tuple(_convert(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    elif origin is dict:
        if isinstance(value, dict):
            return dict(value)
    elif dataclasses.is_dataclass(tp):
        if isinstance(value, dict):
            return build(tp, value, key)
    else:  # pragma: no cover - a programming error in a schema, not a user error
        raise TypeError(f"unsupported annotation {tp!r} for {key}")
    raise RecipeError(f"recipe key {key}: expected {_describe(tp)}, got {value!r}")


def build(cls: type[T], data: dict[str, Any], prefix: str) -> T:
    """Build dataclass ``cls`` from ``data``; ``prefix`` is the section name used in error messages.

    Raises:
        RecipeError: on an unknown key, a wrong type, or a value the dataclass's ``__post_init__`` rejects.
    """
    if not isinstance(data, dict):
        raise RecipeError(f"recipe key {prefix}: expected a table, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for k in data:
        if k not in fields:
            close = difflib.get_close_matches(k, list(fields), n=1)
            hint = f" (did you mean {prefix}.{close[0]}?)" if close else ""
            raise RecipeError(
                f"unknown recipe key {prefix}.{k}{hint}; known keys of [{prefix}]: {', '.join(fields)}"
            )
    kwargs = {}
    for name, f in fields.items():
        key = f"{prefix}.{name}" if prefix else name
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], key)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise RecipeError(f"recipe key {key} is required ({_describe(hints[name])})")
    try:
        return cls(**kwargs)
    except RecipeError:
        raise
    except (ValueError, TypeError) as e:
        raise RecipeError(f"[{prefix}] {e}") from None


def check(condition: bool, key: str, message: str) -> None:
    """Raise a :class:`RecipeError` for ``key`` unless ``condition`` holds (for ``__post_init__`` checks)."""
    if not condition:
        raise RecipeError(f"recipe key {key}: {message}")


def check_probability(value: float, key: str, *, note: str = "") -> None:
    """Raise a :class:`RecipeError` for ``key`` unless ``value`` is a probability, in [0, 1] (``note``: what 0
    or 1 means, added in brackets)."""
    check(0 <= value <= 1, key, "is a probability in [0, 1]" + (f" ({note})" if note else ""))


def check_beta(alpha: float, key: str, *, what: str = "CutMix") -> None:
    """Raise a :class:`RecipeError` for ``key`` unless ``alpha``, the parameter of the Beta(alpha, alpha) that
    draws a mixing ratio (:func:`aip.mixing.cutmix`; ``what``: the mixing it controls), is >= 0. It lives here,
    not in :mod:`aip.mixing`, so recipe dataclasses check it without importing torch."""
    check(alpha >= 0, key, f"is the Beta parameter, >= 0 (0 disables {what})")


def to_dict(obj: Any) -> Any:
    """Plain-data form of a dataclass tree (tuples become lists, ``None`` values are dropped), TOML-ready."""
    if dataclasses.is_dataclass(obj):
        out = {}
        for f in dataclasses.fields(obj):
            v = to_dict(getattr(obj, f.name))
            if v is not None:
                out[f.name] = v
        return out
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items() if v is not None}
    return obj
