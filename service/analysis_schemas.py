"""Response and request bodies of the analysis endpoints (``routes/analysis.py``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MAX_NOTE_CHARS = 65_536


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class HistoryOut(_Out):
    study: str
    total: int = Field(description="Finished trials with a value (complete or pruned).")
    numbers: list[int] = Field(description="An evenly spread sample of them, by number.")
    values: list[float]
    states: list[str]
    epochs: list[int] = Field(
        description="Epochs trained by every finished trial up to and including this one."
    )
    best_numbers: list[int] = Field(
        description="Complete trials that beat every earlier one: the best-so-far steps."
    )
    best_values: list[float]
    best_epochs: list[int]


class ParamsOut(_Out):
    study: str
    schedule: str | None = Field(description="The schedule type asked for; null for all.")
    total: int = Field(description="Complete trials with a value; the columns hold a sample.")
    numbers: list[int]
    values: list[float]
    schedules: list[str | None]
    params: dict[str, list[Any]] = Field(
        description="Each parameter's column (null where a trial lacks it), by Optuna name."
    )


class ErrorCountOut(_Out):
    message: str
    count: int
    example: int = Field(description="The latest trial that failed with this message.")


class FailuresOut(_Out):
    study: str
    failed: int = Field(description="Trials that failed (retried ones included).")
    errors: list[ErrorCountOut] = Field(description="The most common error messages first.")


class NoteOut(_Out):
    study: str
    body: str = Field(description="Markdown; the same note optuna-dashboard shows.")
    version: int = Field(description="Incremented on every save; 0 without a note.")


class NoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: str = Field(
        description=f"Markdown, at most {MAX_NOTE_CHARS} characters, no control characters "
        "but tab and newline."
    )
