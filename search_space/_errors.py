"""Errors raised by :mod:`search_space`.

Hierarchy::

    SearchSpaceError
    ├── DefinitionError        a study definition breaks one or more rules
    └── ConfigError            a fixed trial configuration does not fit its space

Both carry every problem found, each with the path of the offending field, so
that a caller can report them all at once instead of one per round trip.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input: where (``loc``) and why (``msg``)."""

    loc: Loc
    msg: str

    def as_dict(self) -> dict[str, object]:
        return {"loc": list(self.loc), "msg": self.msg}

    def __str__(self) -> str:
        where = ".".join(str(p) for p in self.loc) or "<root>"
        return f"{where}: {self.msg}"


class SearchSpaceError(Exception):
    """Root of the errors raised by :mod:`search_space`."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        summary = "; ".join(str(p) for p in self.problems)
        super().__init__(f"{len(self.problems)} problem(s): {summary}")


class DefinitionError(SearchSpaceError):
    """A study definition is invalid. ``problems`` lists every rule it breaks."""


class ConfigError(SearchSpaceError):
    """A fixed trial configuration is invalid for its study's search space."""
