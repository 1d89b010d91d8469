"""The API's routers, one module per concern."""

from lrsearch.service.routes import (
    analysis,
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
    "analysis",
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
