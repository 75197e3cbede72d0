"""Candidate spaces: what a campaign's values look like."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Optional, Union

from .errors import FlowlabError


@dataclass(frozen=True, init=False)
class Sequence:
    """Strings of ``min_length..max_length`` tokens of ``alphabet``, joined by ``separator``.

    ``Sequence("ACGT", length=8)`` is DNA of length 8: a string alphabet is split into its
    characters. Give a list for tokens longer than one character
    (``Sequence(["Ala", "Gly"], min_length=2, max_length=5, separator="-")``).
    """

    alphabet: tuple[str, ...]
    min_length: int
    max_length: int
    separator: str

    def __init__(
        self,
        alphabet: Union[str, Iterable[str]],
        length: Optional[int] = None,
        *,
        min_length: Optional[int] = None,
        max_length: Optional[int] = None,
        separator: str = "",
    ) -> None:
        if length is not None:
            if min_length is not None or max_length is not None:
                raise ValueError("give either length or min_length/max_length, not both")
            low = high = length
        else:
            # One bound alone fixes the length.
            bounds = [b for b in (min_length, max_length) if b is not None]
            if not bounds:
                raise ValueError("a sequence space needs length, or min_length and max_length")
            low = min_length if min_length is not None else bounds[0]
            high = max_length if max_length is not None else bounds[0]
        # A string alphabet is its characters.
        tokens = tuple(alphabet)
        object.__setattr__(self, "alphabet", tokens)
        object.__setattr__(self, "min_length", low)
        object.__setattr__(self, "max_length", high)
        object.__setattr__(self, "separator", separator)

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "sequence",
            "alphabet": list(self.alphabet),
            "min_length": self.min_length,
            "max_length": self.max_length,
            "separator": self.separator,
        }


@dataclass(frozen=True)
class Grid:
    """Points of a ``dims``-dimensional grid, each coordinate in ``[0, size)``; values are
    lists of ``dims`` integers."""

    dims: int
    size: int

    def to_json(self) -> dict[str, Any]:
        return {"type": "grid", "dims": self.dims, "size": self.size}


@dataclass(frozen=True, init=False)
class Set:
    """Subsets of ``items`` with ``min_size..max_size`` members; values are lists of items,
    sorted as in ``items`` in answers."""

    items: tuple[str, ...]
    min_size: int
    max_size: int

    def __init__(self, items: Iterable[str], min_size: int, max_size: int) -> None:
        object.__setattr__(self, "items", tuple(items))
        object.__setattr__(self, "min_size", min_size)
        object.__setattr__(self, "max_size", max_size)

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "set",
            "items": list(self.items),
            "min_size": self.min_size,
            "max_size": self.max_size,
        }


Space = Union[Sequence, Grid, Set]


def space_from_json(data: Any) -> Space:
    """The space of a campaign as the server describes it."""
    if not isinstance(data, dict):
        raise FlowlabError(f"a space must be a JSON object, not {data!r}")
    kind = data.get("type")
    try:
        if kind == "sequence":
            return Sequence(
                data["alphabet"],
                min_length=data["min_length"],
                max_length=data["max_length"],
                separator=data.get("separator", ""),
            )
        if kind == "grid":
            return Grid(dims=data["dims"], size=data["size"])
        if kind == "set":
            return Set(data["items"], min_size=data["min_size"], max_size=data["max_size"])
    except KeyError as missing:
        raise FlowlabError(f"the {kind} space lacks {missing}") from None
    raise FlowlabError(f"unknown space type {kind!r}")
