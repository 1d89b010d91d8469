"""``serve``, ``submit``, ``status``, ``best`` and ``keys``: filled in with the service."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the service and REST-client commands to ``app``."""
