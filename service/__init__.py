"""The lrsearch REST service: ``create_app(settings)`` builds the FastAPI app.

Nothing is configured or connected at import time: settings are read when
:func:`create_app` is called (from ``LRSEARCH_*`` unless given), and the storage
is opened in the app's lifespan.
"""

from lrsearch.service.app import create_app, registered_tasks
from lrsearch.service.openapi import API_PREFIX
from lrsearch.service.settings import Settings

__all__ = ["API_PREFIX", "Settings", "create_app", "registered_tasks"]
