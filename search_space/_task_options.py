"""Bounds on ``task_options``: a small JSON object passed to a built-in task.

Which option names and values a task accepts is the task's business (the
worker builds the task and reports its error on the trial); this module only
keeps the object small and plain JSON, finite numbers included, like every
other field of a definition.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import AfterValidator

MAX_DEPTH = 4
MAX_KEYS = 64
"""Keys (or list items) in any one object (or list)."""
MAX_STRING = 4096
"""Characters in any one string, keys included (a file path fits)."""


def task_options_problems(value: Any, path: str = "", depth: int = 0) -> list[str]:
    """Everything that keeps ``value`` from being small plain JSON, each with its path.

    Args:
        value: The options (any JSON-decoded value; the top level must be an object).
        path: Where ``value`` sits, for the messages.
        depth: How deep ``value`` is nested (the top level object is 0).
    """
    if depth == 0 and not isinstance(value, dict):
        return ["must be an object of option names to values"]
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return []
    if isinstance(value, float):
        return [] if math.isfinite(value) else [f"{path}: must be a finite number, got {value}"]
    if isinstance(value, str):
        return [] if len(value) <= MAX_STRING else [f"{path}: longer than {MAX_STRING} characters"]
    if not isinstance(value, dict | list):
        return [f"{path}: {type(value).__name__} is not a JSON value"]
    if depth >= MAX_DEPTH:
        return [f"{path}: nested deeper than {MAX_DEPTH} levels"]
    problems = []
    if len(value) > MAX_KEYS:
        problems.append(f"{path}: more than {MAX_KEYS} entries")
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in list(items)[:MAX_KEYS]:
        if isinstance(value, dict) and (not isinstance(key, str) or len(key) > MAX_STRING):
            problems.append(f"{path}: option names must be strings up to {MAX_STRING} characters")
            continue
        sub = (f"{path}.{key}" if path else key) if isinstance(value, dict) else f"{path}[{key}]"
        problems.extend(task_options_problems(item, sub, depth + 1))
    return problems


def _small_plain_json(value: dict[str, Any]) -> dict[str, Any]:
    problems = task_options_problems(value)
    if problems:
        raise ValueError("; ".join(problems))
    return value


TaskOptions = Annotated[dict[str, Any], AfterValidator(_small_plain_json)]
"""The ``task_options`` field: an object of option names to small, plain JSON values."""
