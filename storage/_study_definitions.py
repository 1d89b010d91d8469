"""Stored study definitions: their format version, upgrades, and a fallback.

A row's ``definition`` is JSON written by some release; ``definition_version``
says which format. Reading goes through :func:`upgrade_definition` (one step
per version) and then validation. A definition that still does not validate
(a newer format, rules that changed) must not break listings or workers: the
reader gets a stand-in built from the row's columns plus the problem.
"""

from __future__ import annotations

import json
from typing import Any

import pydantic

from lrsearch.search_space import StudyDefinition

# The format of the stored definition; bump it with a step in _DEFINITION_UPGRADES.
DEFINITION_VERSION = 1

# Each step turns a stored definition of version ``v`` into one of version ``v + 1``.
_DEFINITION_UPGRADES: dict[int, Any] = {}


def upgrade_definition(raw: dict[str, Any], version: int | None) -> dict[str, Any]:
    """A stored definition brought to :data:`DEFINITION_VERSION` (rows with none are 1).

    Raises:
        ValueError: The version is newer than this code, or has no upgrade step.
    """
    v = 1 if version is None else int(version)
    if v > DEFINITION_VERSION:
        raise ValueError(
            f"definition version {v} is newer than this lrsearch's ({DEFINITION_VERSION})"
        )
    while v < DEFINITION_VERSION:
        step = _DEFINITION_UPGRADES.get(v)
        if step is None:
            raise ValueError(f"no upgrade for definition version {v}")
        raw, v = step(raw), v + 1
    return raw


def read_definition(m: Any) -> tuple[StudyDefinition, str | None]:
    """The definition of a ``lrsearch_studies`` row mapping, and its problem (``None`` if fine)."""
    text = str(m["definition"])
    try:
        raw = json.loads(text)
        if not isinstance(raw, dict):
            raise ValueError("the stored definition is not a JSON object")
        return StudyDefinition.model_validate(
            upgrade_definition(raw, m.get("definition_version"))
        ), None
    except (ValueError, pydantic.ValidationError) as exc:
        problem = f"stored definition unusable: {str(exc).splitlines()[0]}"
    # A stand-in from the columns (validated when possible), so that readers of
    # name, task, direction and budget still work.
    base = {"name": str(m["name"]), "task": str(m["task"])}
    try:
        stand_in = StudyDefinition.model_validate(
            {
                **base,
                "objective": {"direction": str(m["direction"])},
                "budget": {
                    "n_trials": int(m["n_trials"]),
                    "max_epochs": int(m["max_epochs"]),
                    "max_retries": int(m["max_retries"]),
                },
            }
        )
    except pydantic.ValidationError:
        stand_in = StudyDefinition.model_construct(name=base["name"], task=base["task"])
    return stand_in, problem
