"""Prometheus metrics of one app: requests, latency by route template, trials and studies.

Each app has its own registry (no process-global state), so tests and several
apps in one process never collide.

Only totals over every tenant are exposed: no label carries a tenant, a study
or a key, so one tenant's scrape learns nothing about another's work. Counting
trials is a ``GROUP BY`` over every trial, too costly to run on each scrape of
a large storage: the counts are read at most once per ``refresh_s`` seconds
and served from memory in between (:class:`CountsCache`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import sqlalchemy.exc
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from lrsearch import storage

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True)
class StorageCounts:
    """Totals over every tenant: trials by state, studies by control state."""

    trials: Mapping[str, int]
    studies: Mapping[str, int]


class CountsCache:
    """The latest :class:`StorageCounts`, read again once they are ``refresh_s`` old.

    Args:
        read: Reads the counts from the storage; returns ``None`` while the
            storage is not open yet.
        refresh_s: How long counts are served from memory (0: read every time).
        clock: Monotonic seconds (tests pass their own to step time).
    """

    def __init__(
        self,
        read: Callable[[], StorageCounts | None],
        refresh_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self._refresh_s = refresh_s
        self._clock = clock
        # One reader at a time: concurrent scrapes of stale counts wait for one query.
        self._lock = threading.Lock()
        self._counts: StorageCounts | None = None
        self._read_at = 0.0

    def get(self) -> tuple[StorageCounts | None, float]:
        """The counts (``None`` if the storage cannot be read now) and their age in seconds."""
        with self._lock:
            now = self._clock()
            if self._counts is not None and now - self._read_at < self._refresh_s:
                return self._counts, now - self._read_at
            try:
                counts = self._read()
            except (storage.StorageError, sqlalchemy.exc.SQLAlchemyError):
                log.warning("metrics: could not count trials and studies", exc_info=True)
                counts = None
            # A failure is not cached: the next scrape tries again.
            self._counts, self._read_at = counts, now
            return counts, 0.0


class _StorageCollector(Collector):
    """Trials and studies by state, from the :class:`CountsCache`, at scrape time."""

    def __init__(self, cache: CountsCache) -> None:
        self._cache = cache

    def describe(self) -> Iterator[Metric]:
        # Declared without samples, so registering does not query the database.
        yield from self._families()

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily(
                "lrsearch_trials", "Trials by state, over all studies.", labels=["state"]
            ),
            GaugeMetricFamily(
                "lrsearch_studies", "Studies by control state, over all tenants.", labels=["state"]
            ),
            GaugeMetricFamily("lrsearch_storage_up", "1 if the last count reached storage."),
            GaugeMetricFamily(
                "lrsearch_storage_counts_age_seconds", "Age of the trial and study counts."
            ),
        )

    def collect(self) -> Iterator[Metric]:
        trials, studies, up, age = self._families()
        counts, age_s = self._cache.get()
        if counts is not None:
            for state, n in sorted(counts.trials.items()):
                trials.add_metric([state], float(n))
            for state, n in sorted(counts.studies.items()):
                studies.add_metric([state], float(n))
        up.add_metric([], 0.0 if counts is None else 1.0)
        age.add_metric([], age_s)
        yield from (trials, studies, up, age)


class Metrics:
    """The app's metrics and their registry.

    Args:
        counts: Reads trial and study counts over every tenant, or returns
            ``None`` while the storage is not open yet.
        refresh_s: See :class:`CountsCache`.
    """

    def __init__(
        self, counts: Callable[[], StorageCounts | None], *, refresh_s: float = 15.0
    ) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "lrsearch_http_requests",
            "HTTP requests by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "lrsearch_http_request_duration_seconds",
            "HTTP request latency by method and route template.",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.counts = CountsCache(counts, refresh_s)
        self.registry.register(_StorageCollector(self.counts))

    def observe_request(self, *, method: str, route: str, status: int, seconds: float) -> None:
        """Count one request and record its latency."""
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def render(self) -> bytes:
        """The registry in Prometheus text exposition format."""
        return generate_latest(self.registry)
