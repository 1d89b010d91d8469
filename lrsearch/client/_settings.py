"""What the CLI's REST client reads from ``LRSEARCH_*``: where the service is, and the key."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_API_URL = "http://127.0.0.1:8000"


class ClientSettings(BaseSettings):
    """``lrsearch submit``, ``status``, ``best``, ``delete``, ...: the service and the key."""

    # As storage's CommonSettings, restated: importing lrsearch.storage would load
    # SQLAlchemy and Optuna into every client command.
    model_config = SettingsConfigDict(
        env_prefix="LRSEARCH_", extra="ignore", frozen=True, env_ignore_empty=True
    )

    api_url: str = Field(
        default=DEFAULT_API_URL, description="Where the CLI client finds the service."
    )
    api_key: str | None = Field(
        default=None, description="The API key the CLI client sends (`lrsearch keys create`)."
    )
