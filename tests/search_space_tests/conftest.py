"""Shared fixtures for the search_space tests."""

from __future__ import annotations

from typing import Any

import pytest

from lrsearch.search_space import StudyDefinition, parse_definition

MINIMAL: dict[str, Any] = {"name": "digits-schedules", "task": "digits-mlp"}


@pytest.fixture
def minimal_raw() -> dict[str, Any]:
    """A definition with only the two required fields (a fresh copy per test)."""
    return dict(MINIMAL)


@pytest.fixture
def default_definition() -> StudyDefinition:
    """The definition every default is filled in for."""
    return parse_definition(MINIMAL)
