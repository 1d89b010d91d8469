"""Stopping a worker on SIGTERM/SIGINT: at an epoch boundary, or by a watchdog.

The first signal sets the stop event: the trial stops at its next epoch
boundary, is given back for a retry, and the worker exits 0. If that takes
longer than ``stop_timeout_s`` (an epoch longer than that, a hung call), a
watchdog gives the trial back itself and exits 0. A second signal exits at once
(the trial then goes stale and is retried).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType

log = logging.getLogger("lrsearch.workers.loop")


def install_stop_signals(
    stop: threading.Event,
    exited: threading.Event,
    stop_timeout_s: float,
    give_back: Callable[[], None],
) -> Callable[[], None]:
    """Handle SIGTERM/SIGINT; returns what puts the previous handlers back.

    Args:
        stop: Set by the first signal.
        exited: Set by the worker once it has exited its loop (the watchdog stands down).
        stop_timeout_s: The most seconds from the first signal to the exit.
        give_back: Hands the current trial back (called by the watchdog only).
    """

    def handler(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            log.warning("second signal %d: exiting at once", signum)
            os._exit(128 + signum)
        log.warning(
            "signal %d: stopping after the current epoch (at most %.0f s)", signum, stop_timeout_s
        )
        stop.set()
        threading.Thread(
            target=_stop_watchdog,
            args=(exited, stop_timeout_s, give_back),
            daemon=True,
            name="stop",
        ).start()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore


def _stop_watchdog(
    exited: threading.Event, stop_timeout_s: float, give_back: Callable[[], None]
) -> None:
    """Bound the time from a stop signal to the exit, whatever the main thread is doing."""
    if exited.wait(stop_timeout_s):
        return
    log.error(
        "still busy %.0f s after the stop signal; giving the trial back and exiting",
        stop_timeout_s,
    )
    # The give-back waits for the study lock, which a hung main thread may
    # hold: give it a few seconds on its own thread, then exit regardless
    # (the trial then goes stale and is retried all the same).
    helper = threading.Thread(target=give_back, daemon=True, name="give-back")
    helper.start()
    helper.join(timeout=5.0)
    logging.shutdown()
    os._exit(0)
