"""Helpers of the CLI tests: the live service's coordinates and running a command."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from typer.testing import CliRunner, Result

from lrsearch.cli.main import app


@dataclass(frozen=True)
class Live:
    api_url: str
    storage_url: str
    key: str
    read_key: str


def run(live: Live, *args: str, key: str | None = None, input: str | None = None) -> Result:
    """Run ``lrsearch *args`` against ``live`` with an admin key (or ``key``)."""
    env = {"LRSEARCH_API_URL": live.api_url, "LRSEARCH_API_KEY": key or live.key}
    return CliRunner().invoke(app, list(args), env=env, input=input)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path
