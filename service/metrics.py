"""Prometheus metrics of one app: requests, latency by route template, trials by state.

Each app has its own registry (no process-global state), so tests and several
apps in one process never collide.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping

import sqlalchemy.exc
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _TrialsCollector(Collector):
    """Reads trials per state from the storage at scrape time."""

    def __init__(self, counts: Callable[[], Mapping[str, int] | None]) -> None:
        self._counts = counts

    def describe(self) -> Iterator[Metric]:
        # Declared without samples, so registering does not query the database.
        yield GaugeMetricFamily("lrsearch_trials", "Trials by state, over all studies.")
        yield GaugeMetricFamily("lrsearch_storage_up", "1 if the last scrape reached storage.")

    def collect(self) -> Iterator[Metric]:
        trials = GaugeMetricFamily(
            "lrsearch_trials", "Trials by state, over all studies.", labels=["state"]
        )
        up = GaugeMetricFamily("lrsearch_storage_up", "1 if the last scrape reached storage.")
        try:
            counts = self._counts()
        except sqlalchemy.exc.SQLAlchemyError:
            log.warning("metrics: could not count trials", exc_info=True)
            counts = None
        for state, n in sorted((counts or {}).items()):
            trials.add_metric([state], float(n))
        up.add_metric([], 0.0 if counts is None else 1.0)
        yield trials
        yield up


class Metrics:
    """The app's metrics and their registry.

    Args:
        trial_counts: Returns trials per state over every study, or ``None``
            while the storage is not open yet.
    """

    def __init__(self, trial_counts: Callable[[], Mapping[str, int] | None]) -> None:
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
        self.registry.register(_TrialsCollector(trial_counts))

    def observe_request(self, *, method: str, route: str, status: int, seconds: float) -> None:
        """Count one request and record its latency."""
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def render(self) -> bytes:
        """The registry in Prometheus text exposition format."""
        return generate_latest(self.registry)
