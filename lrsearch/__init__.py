"""lrsearch: hyperparameter search for neural-network learning-rate schedules.

The installed package holds the whole project:

- ``lrsearch.search_space`` - the study definition, schedule types, Optuna mapping (pure);
- ``lrsearch.storage`` - engines, lrsearch's own tables, trial lifecycle, result queries;
- ``lrsearch.workers`` - the pull loop, tasks and the PyTorch training loop;
- ``lrsearch.service`` - the FastAPI app and the dashboard;
- ``lrsearch.cli`` - the ``lrsearch`` command;
- ``lrsearch.client`` - the Python client (``from lrsearch import Client``).

``import lrsearch`` itself is light: it imports none of them.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lrsearch")
except PackageNotFoundError:  # a checkout imported without installing
    __version__ = "0+unknown"

__all__ = ["Client", "__version__"]


def __getattr__(name: str) -> object:
    # ``Client`` on first use, so that ``import lrsearch`` stays light (no httpx).
    if name == "Client":
        from lrsearch.client import Client

        return Client
    raise AttributeError(f"module 'lrsearch' has no attribute {name!r}")
