"""The API's routers, one module per concern."""

from service.routes import keys, ops, results, studies, trials

__all__ = ["keys", "ops", "results", "studies", "trials"]
