"""Procedures experiments share: deploy, put load on, release, observe — on any backend.

They are plain functions over a backend :class:`~pytest_rollout.backends.base.Namespace` and a
load starter, so that the experiments in ``tests/safety`` stay short and a team can run the same
procedure against its own service.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import httpx

from pytest_rollout._wait import wait_for
from pytest_rollout.backends.base import AnalysisRunView, EventView, Namespace, RolloutView
from pytest_rollout.config import Variant
from pytest_rollout.load import BackgroundLoad, TrafficLog
from pytest_rollout.manifests import Manifest

LoadStarter = Callable[[str], BackgroundLoad]

_SERVE_TIMEOUT = 30.0
_WARMUP_TIMEOUT = 10.0


@dataclass(frozen=True)
class ReleaseRun:
    """What one release under load measured. Times are epoch seconds."""

    label: str
    log: TrafficLog
    released_at: float
    rolled_out_at: float
    events: list[str] = field(default_factory=list)

    @property
    def rollout_seconds(self) -> float:
        return self.rolled_out_at - self.released_at

    def failures(self) -> dict[str, int]:
        """Client-visible failures by status code or transport error kind: 5xx and no answer."""
        counts = {str(code): n for code, n in sorted(self.log.by_status().items()) if code >= 500}
        counts.update({kind: n for kind, n in sorted(self.log.by_error().items()) if n})
        return counts

    def failure_count(self) -> int:
        return sum(self.failures().values())

    def summary(self) -> dict[str, object]:
        return {
            "label": self.label,
            "requests": len(self.log),
            "failures": self.failure_count(),
            "failures_by_status": self.failures(),
            "by_version": self.log.summary()["by_version"],
            "release_at_s": round(self.released_at - self.log.started_at, 3),
            "rollout_s": round(self.rollout_seconds, 3),
            "load_s": round(self.log.duration, 3),
            "achieved_rate": round(self.log.achieved_rate, 1),
            "lateness_p99_ms": _ms(self.log.lateness_p99),
        }


def wait_serving(url: str, *, timeout: float = _SERVE_TIMEOUT) -> None:
    """Wait until ``url`` answers 200 (the route has ready endpoints)."""

    def answers() -> bool:
        return httpx.get(url, timeout=2.0).status_code == 200

    wait_for(answers, what=f"GET {url} to answer 200", timeout=timeout, interval=0.2)


def release_under_load(
    namespace: Namespace,
    *,
    label: str,
    manifests: Iterable[Manifest],
    workload: str,
    route: str,
    variant: Variant,
    start_load: LoadStarter,
    warmup_requests: int,
    rollout_timeout: float,
) -> ReleaseRun:
    """Deploy ``manifests``, start load on ``route``, release ``variant`` once ``warmup_requests``
    have completed, wait for the rollout to finish and for the load to run its course."""
    namespace.apply(manifests)
    namespace.wait_rolled_out(workload, timeout=rollout_timeout)
    url = namespace.route_url(route)
    wait_serving(url + "/")
    load = start_load(url)
    wait_for(
        lambda: len(load.log) >= warmup_requests,
        what=f"{warmup_requests} warm-up requests to complete before the release",
        timeout=_WARMUP_TIMEOUT,
    )
    released_at = time.time()
    namespace.release(workload, variant)
    namespace.wait_rolled_out(workload, timeout=rollout_timeout)
    rolled_out_at = time.time()
    log = load.wait()
    return ReleaseRun(label, log, released_at, rolled_out_at, namespace.event_lines())


def _covers(log: TrafficLog, instant: float) -> bool:
    """Whether ``log`` has a completed request sent at or after ``instant``."""
    records = log.records
    return bool(records) and records[-1].sent >= instant


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1e3, 3)


@dataclass(frozen=True)
class CanaryRun:
    """A Rollout release under load: the traffic, the Rollout's events and analysis runs."""

    label: str
    log: TrafficLog
    released_at: float
    settled_at: float
    """When the Rollout reached the phase the experiment waited for."""
    view: RolloutView
    events: list[EventView]
    analysis_runs: list[AnalysisRunView]

    def first_event(self, reason: str) -> EventView | None:
        return next((e for e in self.events if e.reason == reason), None)

    def event_lines(self) -> list[str]:
        return [
            f"{e.timestamp - self.released_at:+.1f}s {e.type} {e.reason}: {e.message}"
            for e in self.events
        ]

    def reasons(self) -> list[str]:
        return [e.reason for e in self.events]


def canary_release_under_load(
    namespace: Namespace,
    *,
    label: str,
    manifests: Iterable[Manifest],
    rollout: str,
    route: str,
    variant: Variant,
    start_load: LoadStarter,
    until_phase: str,
    timeout: float,
    tail: float,
) -> CanaryRun:
    """Deploy a Rollout and let it become stable, start load on ``route``, release ``variant``
    and — taking no action — wait until the Rollout reaches ``until_phase``; keep the load on for
    ``tail`` more seconds, so that what happens after is in the log too."""
    namespace.apply(manifests)
    namespace.wait_rolled_out(rollout, timeout=timeout)
    url = namespace.route_url(route)
    wait_serving(url + "/")
    handle = namespace.rollout(rollout)
    load = start_load(url)
    try:
        warmup = math.ceil(load.spec.rate)
        wait_for(
            lambda: len(load.log) >= warmup,
            what=f"{warmup} requests (a second of steady load) before the release",
            timeout=_WARMUP_TIMEOUT,
            interval=0.1,
        )
        released_at = time.time()
        namespace.release(rollout, variant)
        view = handle.wait_for_phase(until_phase, timeout=timeout)
        settled_at = time.time()
        wait_for(
            lambda: _covers(load.log, settled_at + tail),
            what=f"the traffic log to cover {tail:g}s after the Rollout became {until_phase}",
            timeout=tail + 5.0,
            interval=0.25,
        )
    finally:
        log = load.stop()
    return CanaryRun(
        label,
        log,
        released_at,
        settled_at,
        view,
        handle.events(),
        handle.analysis_runs(),
    )
