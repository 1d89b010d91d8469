"""The service's settings, read from ``LRSEARCH_*`` environment variables."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from lrsearch.storage import CommonSettings

ImportanceEvaluator = Literal["fanova", "ped_anova", "mean_decrease_impurity"]


class Settings(CommonSettings):
    """Everything the REST service can be told, by keyword or by environment variable.

    Each field ``x`` is read from ``LRSEARCH_X`` (``storage`` from
    ``LRSEARCH_STORAGE``); other ``LRSEARCH_*`` variables are ignored here. The
    storage URL and the liveness timing (``grace_s``: the service's stale-trial
    sweep) come from :class:`~lrsearch.storage.CommonSettings`.
    """

    auth_disabled: bool = Field(
        default=False,
        description="Serve without API keys: every caller is admin of the default tenant "
        "(logs a warning).",
    )
    max_body_bytes: int = Field(
        default=1 << 20, ge=1, description="Largest request body accepted (413 above)."
    )
    pool_size: int = Field(default=5, ge=1, le=100, description="Database connections kept.")
    importance_evaluator: ImportanceEvaluator = Field(
        default="ped_anova",
        description="Optuna's parameter-importance evaluator (fanova is slow on big studies).",
    )
    importance_cache_size: int = Field(
        default=64, ge=0, description="Studies whose importances are kept in memory."
    )
    metrics_refresh_s: float = Field(
        default=15.0,
        ge=0.0,
        le=3600.0,
        description="Seconds /metrics serves its trial and study counts from memory before "
        "counting again (0: count on every scrape).",
    )
