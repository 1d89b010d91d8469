"""Errors raised by :mod:`storage`.

Hierarchy::

    StorageError
    ├── StudyNotFoundError        no study of that name (or not visible to the tenant)
    ├── StudyAlreadyExistsError   a study of that name exists
    ├── BudgetExhaustedError      the study has no trial budget left
    ├── InvalidStateError         the study cannot make that state change
    └── StorageUnavailableError   the database cannot be reached right now

SQLAlchemy errors are caught at the storage boundary and re-raised as these, so
callers never depend on driver exception types.
"""

from __future__ import annotations


class StorageError(Exception):
    """Root of the errors raised by :mod:`storage`."""


class StudyNotFoundError(StorageError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"study {name!r} not found")


class StudyAlreadyExistsError(StorageError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"a study named {name!r} already exists")


class BudgetExhaustedError(StorageError):
    """No trial can be added: the study's ``n_trials`` are all taken."""


class InvalidStateError(StorageError):
    """The requested state change is not allowed from the study's current state."""


class StorageUnavailableError(StorageError):
    """The database could not be reached (connection refused, restarted, ...)."""
