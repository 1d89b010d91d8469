"""The API's routers, one module per concern."""

from lrsearch.service.routes import (
    code,
    curves,
    dashboard,
    keys,
    ops,
    protocol,
    results,
    schedules,
    studies,
    trials,
)

__all__ = [
    "code",
    "curves",
    "dashboard",
    "keys",
    "ops",
    "protocol",
    "results",
    "schedules",
    "studies",
    "trials",
]
