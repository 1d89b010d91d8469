"""The database's clock, so that hosts with drifting clocks agree on staleness."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection


def now_expr(dialect: str) -> Any:
    """A SQL expression for the current time in seconds since the epoch, as the database sees it."""
    if dialect == "postgresql":
        return sa.func.extract("epoch", sa.func.clock_timestamp())
    # SQLite: julianday('now') has millisecond resolution.
    return (sa.func.julianday("now") - 2440587.5) * 86400.0


def db_now(conn: Connection) -> float:
    """The database's current time (one round trip)."""
    return float(conn.execute(sa.select(now_expr(conn.dialect.name))).scalar_one())
