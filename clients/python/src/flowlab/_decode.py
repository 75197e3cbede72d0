"""Turns the JSON of an answer into the typed dataclasses of ``types``.

Driven by the classes' own annotations, so a field added to a class is decoded without
further code. Fields the server sends that a class does not know are ignored: a newer
server must not break an older client. A missing field without a default, or a value of the
wrong type, is an error: the answer is not what the client was built for.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from typing import Any, Literal, TypeVar, Union

from .errors import FlowlabError
from .spaces import Grid, Sequence, Set, space_from_json

T = TypeVar("T")

_SPACE_CLASSES = (Sequence, Grid, Set)


class DecodeError(FlowlabError):
    """An answer of the server does not have the shape the client expects."""


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def decode(cls: type[T], data: Any) -> T:
    """``data`` (parsed JSON) as an instance of the dataclass ``cls``."""
    return typing.cast(T, _decode(cls, data, cls.__name__))


def _decode(hint: Any, data: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if hint is Any:
        return data
    if origin is Union:
        return _decode_union(typing.get_args(hint), data, where)
    if origin is Literal:
        # Enumerations may grow: a new status is passed through rather than refused.
        if not isinstance(data, str):
            raise DecodeError(f"{where}: expected a string, got {data!r}")
        return data
    if origin is list:
        if not isinstance(data, list):
            raise DecodeError(f"{where}: expected a list, got {data!r}")
        (item,) = typing.get_args(hint)
        return [_decode(item, x, f"{where}[{i}]") for i, x in enumerate(data)]
    if origin is dict:
        if not isinstance(data, dict):
            raise DecodeError(f"{where}: expected an object, got {data!r}")
        _, item = typing.get_args(hint)
        return {k: _decode(item, v, f"{where}.{k}") for k, v in data.items()}
    if hint in _SPACE_CLASSES:
        return space_from_json(data)
    if dataclasses.is_dataclass(hint):
        return _decode_dataclass(hint, data, where)
    if hint is bool:
        if not isinstance(data, bool):
            raise DecodeError(f"{where}: expected a boolean, got {data!r}")
        return data
    if hint is int:
        if isinstance(data, bool) or not isinstance(data, int):
            raise DecodeError(f"{where}: expected an integer, got {data!r}")
        return data
    if hint is float:
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            raise DecodeError(f"{where}: expected a number, got {data!r}")
        return float(data)
    if hint is str:
        if not isinstance(data, str):
            raise DecodeError(f"{where}: expected a string, got {data!r}")
        return data
    raise DecodeError(f"{where}: no decoder for {hint!r}")


def _decode_union(options: tuple[Any, ...], data: Any, where: str) -> Any:
    if data is None:
        if type(None) in options:
            return None
        raise DecodeError(f"{where}: missing (null)")
    options = tuple(o for o in options if o is not type(None))
    if all(o in _SPACE_CLASSES for o in options):
        return space_from_json(data)
    errors = []
    for option in options:
        try:
            return _decode(option, data, where)
        except DecodeError as e:
            errors.append(str(e))
    raise DecodeError("; ".join(errors))


def _decode_dataclass(cls: Any, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise DecodeError(f"{where}: expected an object, got {data!r}")
    hints = _hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.metadata.get("client_only"):
            continue
        if f.name in data:
            values[f.name] = _decode(hints[f.name], data[f.name], f"{where}.{f.name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise DecodeError(f"{where}: the answer lacks {f.name!r}")
    return cls(**values)
