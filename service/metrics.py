"""The service's Prometheus metrics, in a registry of its own.

Names and labels are part of the contract the experiments query:
``http_requests_total{version,route,method,code}``,
``http_request_duration_seconds{version,route}`` (histogram) and
``checkout_results_total{version,outcome}`` with outcome ``success`` or ``failure``.
``http_requests_in_flight{version,route}`` shows requests being handled right now.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)

# Prometheus 2.x reads the 0.0.4 text format; name it explicitly rather than "latest".
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

# Loopback requests take well under a millisecond; injected latency goes to seconds.
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

CHECKOUT_OUTCOMES = ("success", "failure")


class ServiceMetrics:
    """Counters, histogram and gauge labelled with this process's version."""

    def __init__(self, version: str) -> None:
        # `*_created` series double the exposition and no query of ours reads them.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.version = version
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self._requests = Counter(
            "http_requests",
            "HTTP requests answered, by version, route template, method and status code.",
            ("version", "route", "method", "code"),
            registry=self.registry,
        )
        self._duration = Histogram(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by version and route template.",
            ("version", "route"),
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self._in_flight = Gauge(
            "http_requests_in_flight",
            "HTTP requests being handled now, by version and route template.",
            ("version", "route"),
            registry=self.registry,
        )
        self._checkouts = Counter(
            "checkout_results",
            "Checkout attempts by version and outcome (success: order written).",
            ("version", "outcome"),
            registry=self.registry,
        )
        # Both outcomes exist from the start, so a ratio query is 0, not "no data".
        for outcome in CHECKOUT_OUTCOMES:
            self._checkouts.labels(version, outcome)

    def request_started(self, route: str) -> None:
        self._in_flight.labels(self.version, route).inc()

    def request_finished(self, route: str, method: str, code: int, seconds: float) -> None:
        self._in_flight.labels(self.version, route).dec()
        self._requests.labels(self.version, route, method, str(code)).inc()
        self._duration.labels(self.version, route).observe(seconds)

    def checkout(self, *, success: bool) -> None:
        self._checkouts.labels(self.version, "success" if success else "failure").inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
