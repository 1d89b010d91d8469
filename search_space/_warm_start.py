"""The ``warm_start`` section of a study definition (contract names: ``from``, ``top_k``).

``warm_start: {from: [study names] | same_task, top_k: N}``: when the study is
created, the best ``top_k`` configurations of each schedule type found in those
studies (of the same tenant) are enqueued as its first trials. Turning a
configuration of another space into one of this space is storage's job
(``lrsearch.storage._warm_start``); this module only describes the request.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

SAME_TASK = "same_task"
MAX_SOURCES = 50
MAX_TOP_K = 10
_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"

StudyName = Annotated[str, Field(pattern=_NAME_PATTERN)]


class WarmStart(BaseModel):
    """Where a new study takes its first configurations from."""

    # "from" is a Python keyword: the field is ``sources`` in code, "from" in
    # JSON/YAML both ways (and only "from" is accepted on input).
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        allow_inf_nan=False,
        validate_by_alias=True,
        validate_by_name=False,
        serialize_by_alias=True,
    )

    sources: list[StudyName] | Literal["same_task"] = Field(
        alias="from",
        description="names of studies of the same tenant, or same_task: all of its studies "
        "of this study's task",
    )
    top_k: int = Field(
        default=1, ge=1, le=MAX_TOP_K, description="configurations per schedule type"
    )

    @field_validator("sources", mode="before")
    @classmethod
    def _one_word(cls, value: object) -> object:
        if isinstance(value, str) and value != SAME_TASK:
            raise ValueError(f"a list of study names, or {SAME_TASK!r}; got {value!r}")
        return value

    @field_validator("sources")
    @classmethod
    def _sources(cls, value: list[str] | str) -> list[str] | str:
        if isinstance(value, list):
            if not value:
                raise ValueError(f"name at least one study, or use {SAME_TASK!r}")
            if len(value) > MAX_SOURCES:
                raise ValueError(f"at most {MAX_SOURCES} studies, got {len(value)}")
            dupes = sorted({v for v in value if value.count(v) > 1})
            if dupes:
                raise ValueError(f"duplicate entries: {dupes}")
        return value
