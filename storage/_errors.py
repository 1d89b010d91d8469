"""Errors raised by :mod:`storage`.

Hierarchy::

    StorageError
    ├── StudyNotFoundError        no study of that name (or not visible to the tenant)
    ├── StudyAlreadyExistsError   a study of that name exists
    ├── BudgetExhaustedError      the study has no trial budget left
    ├── InvalidStateError         the study cannot make that state change
    ├── InvalidInputError         the database rejected a value (out of range, NUL byte...)
    ├── StorageUnavailableError   the database cannot be reached right now
    ├── AmbiguousStudyError       a trusted caller named a study that several tenants have
    ├── UnsupportedStorageError   the URL names a database lrsearch does not support
    └── SchemaVersionError        the database's schema is not one this code can use

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


class InvalidInputError(StorageError):
    """The database rejected a value that came from the caller (a client error, not a bug).

    Raised by the engines' error translation (:mod:`storage._dberrors`) for
    driver ``DataError``s: an integer outside the column's range, a NUL byte in
    a text value. Callers validate input first; this is the safety net.
    """


class StorageUnavailableError(StorageError):
    """The database could not be reached (connection refused, restarted, ...)."""


class AmbiguousStudyError(StorageError):
    """A study name given without a tenant exists in several tenants."""

    def __init__(self, name: str, tenants: list[str]) -> None:
        self.name = name
        self.tenants = tenants
        super().__init__(
            f"study {name!r} exists in several tenants ({', '.join(tenants)}); name the tenant"
        )


class UnsupportedStorageError(StorageError):
    """The storage URL names a database (or driver) lrsearch does not support."""


class SchemaVersionError(StorageError):
    """The database's schema (ours or Optuna's) is at a revision this code cannot use."""
