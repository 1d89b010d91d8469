"""What every lrsearch process that opens the storage reads from ``LRSEARCH_*``.

:class:`CommonSettings` is the base of the service's ``Settings`` and the
workers' ``WorkerSettings``: one definition (name, type, default, meaning) of
each environment variable, which ``python -m lrsearch.cli.envdoc`` turns into
the README's table. Each field ``x`` is read from ``LRSEARCH_X``; an empty
variable counts as unset (``docker compose`` turns ``${VAR:-}`` into ``""``).
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "LRSEARCH_"
DEFAULT_STORAGE_URL = "sqlite:///lrsearch.db"
DEFAULT_HEARTBEAT_S = 10.0
DEFAULT_GRACE_S = 60.0

# Shared by every settings class of the project, the client's included.
SETTINGS_CONFIG = SettingsConfigDict(
    env_prefix=ENV_PREFIX, extra="ignore", frozen=True, env_ignore_empty=True
)


class CommonSettings(BaseSettings):
    """The storage and the trial-liveness timing, shared by the service and the workers."""

    model_config = SETTINGS_CONFIG

    storage: str | None = Field(
        default=None,
        description=f"SQLAlchemy URL of the shared storage; unset means `{DEFAULT_STORAGE_URL}`.",
    )
    heartbeat_s: float = Field(
        default=DEFAULT_HEARTBEAT_S,
        gt=0,
        description="Seconds between a running trial's heartbeats.",
    )
    grace_s: float = Field(
        default=DEFAULT_GRACE_S,
        gt=0,
        description="Seconds without a heartbeat before a trial is stale, failed and retried.",
    )

    @property
    def storage_url(self) -> str:
        """``storage``, or the embedded SQLite default when it is unset."""
        return self.storage or DEFAULT_STORAGE_URL


def env_name(field: str) -> str:
    """The environment variable of a settings field: ``grace_s`` -> ``LRSEARCH_GRACE_S``."""
    return ENV_PREFIX + field.upper()
