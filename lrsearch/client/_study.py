"""A study as the client sees it: the trial loop for the user's own code, and results."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from lrsearch.client._errors import ClientError
from lrsearch.client._http import Http, segment
from lrsearch.client._trial import Trial

log = logging.getLogger(__name__)

PAGE_SIZE = 200
LEFT_THE_LOOP = "the training code raised an exception or left the trial loop"
"""The ``error`` of a trial whose loop body raised (the exception itself propagates)."""


class Study:
    """One study of the service. Get it from :meth:`lrsearch.Client.study`."""

    def __init__(self, http: Http, name: str) -> None:
        self._http = http
        self.name = name
        self._path = f"/studies/{segment(name)}"

    def __repr__(self) -> str:
        return f"Study({self.name!r})"

    # -- running trials ------------------------------------------------------------

    def trials(self, *, client_id: str | None = None) -> Iterator[Trial]:
        """Claim trials one after another until the service has none left (204).

        While the caller trains a trial, a background thread sends heartbeats.
        When the loop body returns, the trial is completed with the last
        reported value (unless it was pruned, or ended by :meth:`Trial.fail`
        and the like). When the body raises, the exception propagates and the
        trial is failed with :data:`LEFT_THE_LOOP` (call ``trial.fail(msg)``
        first for a precise reason); on Ctrl-C or SIGTERM the trial is
        released instead and the service retries it.

        Args:
            client_id: The id holding each trial's lease; default ``host:pid:random``.
        """
        client_id = client_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        with _interrupts() as interrupted:
            while True:
                claimed = self._http.json(
                    "POST", f"{self._path}/trials/claim", json={"client_id": client_id}
                )
                if claimed is None:
                    return
                trial = Trial(self._http, self.name, client_id, claimed)
                trial._start_heartbeat()
                try:
                    yield trial
                except GeneratorExit:
                    _abandon(trial, interrupted.is_set())
                    raise
                finally:
                    trial._stop_heartbeat()
                _wrap_up(trial)

    # -- results -------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """The study: definition summary, state, counts by trial state, best trial."""
        result: dict[str, Any] = self._http.json("GET", self._path)
        return result

    def best(self) -> dict[str, Any] | None:
        """The best completed trial (params, value, ...), or ``None`` before any completes."""
        body = self._http.json("GET", f"{self._path}/best")
        trial: dict[str, Any] | None = body["trial"]
        return trial

    def schedules(self) -> list[dict[str, Any]]:
        """Per schedule type, best first: its best trial, counts and median value."""
        body = self._http.json("GET", f"{self._path}/schedules")
        items: list[dict[str, Any]] = body["items"]
        return items

    def best_as_pytorch(self) -> str:
        """The best trial's optimizer and schedule as ready-to-paste PyTorch code.

        Raises:
            ClientError: No trial has completed yet.
        """
        from lrsearch.search_space import parse_definition, trial_pytorch_code

        info = self.info()
        best = info.get("best")
        if best is None:
            raise ClientError(f"study {self.name!r} has no completed trial yet")
        definition = parse_definition(info["definition"])
        return trial_pytorch_code(
            definition, best["params"], number=best["number"], value=best["value"]
        )

    def trial_rows(self) -> list[dict[str, Any]]:
        """Every trial as a flat dict: state, value, the main values, each Optuna param."""
        rows: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            query: dict[str, Any] = {"limit": PAGE_SIZE}
            if cursor is not None:
                query["cursor"] = cursor
            page = self._http.json("GET", f"{self._path}/trials", params=query)
            for item in page["items"]:
                row = {k: v for k, v in item.items() if k != "params"}
                for key, value in item["params"].items():
                    row.setdefault(key, value)
                rows.append(row)
            cursor = page["next_cursor"]
            if cursor is None:
                return rows

    def trials_table(self) -> Any:
        """:meth:`trial_rows` as a pandas DataFrame if pandas is installed, else the list."""
        rows = self.trial_rows()
        try:
            import pandas as pd  # type: ignore[import-untyped,unused-ignore]
        except ImportError:
            return rows
        return pd.DataFrame(rows)


def _abandon(trial: Trial, interrupted: bool) -> None:
    """The loop was left mid-trial: release it (interrupt) or fail it (an exception)."""
    try:
        if interrupted:
            log.warning("interrupted: handing trial %d back for retry", trial.number)
            trial.release()
        else:
            trial.fail(LEFT_THE_LOOP)
    except Exception as exc:
        # The service fails the trial as stale once its heartbeats stop.
        log.warning("could not end trial %d (%s); it will go stale", trial.number, exc)


def _wrap_up(trial: Trial) -> None:
    """The loop body returned: complete the trial unless it already ended."""
    if trial.stopped:
        return
    if trial._last_value is None:
        trial.fail("no value was reported for this trial")
    else:
        trial.complete()


@contextmanager
def _interrupts() -> Iterator[threading.Event]:
    """Turn SIGTERM into KeyboardInterrupt and note that either arrived.

    Only in the main thread (elsewhere signals cannot be handled); the
    previous handlers come back on exit.
    """
    seen = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield seen
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        seen.set()
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield seen
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
