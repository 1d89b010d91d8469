"""The API's routers, one module per concern."""

from lrsearch.service.routes import (
    curves,
    dashboard,
    keys,
    ops,
    protocol,
    results,
    studies,
    trials,
)

__all__ = ["curves", "dashboard", "keys", "ops", "protocol", "results", "studies", "trials"]
