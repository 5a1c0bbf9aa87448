"""A release under load, step by step: deploy, serve, warm up, release, observe, settle.

:class:`LiveRelease` is the procedure every experiment shares, on any backend. It deploys a
manifest set into a namespace, waits until the route serves, starts open-loop load, releases
a variant once a second of load has completed, samples the workload's status while it rolls,
and — after the experiment's own waiting or acting — keeps the load on for a tail and returns
a :class:`~pytest_rollout.runs.ReleaseRun`.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

import httpx

from pytest_rollout._wait import wait_for
from pytest_rollout.backends.base import (
    EventView,
    Namespace,
    ResourceSample,
    RolloutHandle,
    RolloutView,
)
from pytest_rollout.clock import epoch_now
from pytest_rollout.config import ServingCheck, Variant
from pytest_rollout.engine.rollout_model import SetWeight, parse_rollout
from pytest_rollout.errors import ConfigError, RolloutError, WaitTimeout
from pytest_rollout.load import BackgroundLoad, TrafficLog
from pytest_rollout.manifests import ManifestSet
from pytest_rollout.progress import ProgressSink, ProgressSnapshot
from pytest_rollout.runs import ReleaseRun, StatusSample

WORKLOAD_KINDS = ("Rollout", "Deployment")
SETTLED = ("Healthy", "Degraded")
"""A Rollout has settled when it completed or aborted."""

SAMPLE_INTERVAL = 0.25
_SERVE_TIMEOUT = 30.0
_WARMUP_TIMEOUT = 10.0
_COVER_MARGIN = 5.0


class LoadStarter(Protocol):
    def __call__(self, url: str, *, rate: float, duration: float) -> BackgroundLoad: ...


@dataclass(frozen=True)
class ReleaseTarget:
    """The workload a release changes and the route its clients use."""

    kind: str
    name: str
    route: str
    first_weight: int | None
    steps: int | None


def resolve_target(
    manifests: ManifestSet,
    *,
    workload: str | None,
    route: str | None,
    set_name: str,
    error: Callable[[str, str], ConfigError] | None = None,
) -> ReleaseTarget:
    """The workload (default: the only Rollout or Deployment) and route (default: the only
    HTTPRoute) of manifest set ``set_name``.

    ``error(key, message)`` makes the ConfigError for a missing or ambiguous ``workload`` or
    ``route`` (default: one naming the manifest set and the key).
    """

    def fail(key: str, message: str) -> ConfigError:
        if error is not None:
            return error(key, message)
        return ConfigError(f"manifest set {set_name!r}: {key}: {message}")

    workloads = [m for m in manifests if m.kind in WORKLOAD_KINDS]
    routes = [m.name for m in manifests if m.kind == "HTTPRoute"]
    names = ", ".join(f"{m.kind}/{m.name}" for m in workloads) or "none"
    if workload is None:
        if len(workloads) != 1:
            raise fail(
                "workload",
                f"name the workload: manifest set {set_name!r} has {len(workloads)} Rollouts "
                f"and Deployments ({names})",
            )
        chosen = workloads[0]
    else:
        found = [m for m in workloads if m.name == workload]
        if not found:
            raise fail(
                "workload",
                f"{workload!r} is not in manifest set {set_name!r} (workloads: {names})",
            )
        chosen = found[0]
    if route is None:
        if len(routes) != 1:
            raise fail(
                "route",
                f"name the route: manifest set {set_name!r} has {len(routes)} HTTPRoutes "
                f"({', '.join(routes) or 'none'})",
            )
        route = routes[0]
    elif route not in routes:
        raise fail(
            "route",
            f"{route!r} is not in manifest set {set_name!r} "
            f"(HTTPRoutes: {', '.join(routes) or 'none'})",
        )
    first_weight = steps = None
    if chosen.kind == "Rollout":
        canary = parse_rollout(chosen).spec.canary
        if canary is not None:
            steps = len(canary.steps)
            first_weight = next((s.weight for s in canary.steps if isinstance(s, SetWeight)), None)
    return ReleaseTarget(chosen.kind, chosen.name, route, first_weight, steps)


def wait_serving(url: str, check: ServingCheck, *, timeout: float = _SERVE_TIMEOUT) -> None:
    """Wait until the serving check (``[serving]``, else the first request of the mix)
    answers as expected at ``url`` (a route's base URL)."""
    target = url.rstrip("/") + check.path
    seen: list[str] = []

    def answers() -> bool:
        response = httpx.request(check.method, target, json=check.body, timeout=2.0)
        seen[:] = [str(response.status_code)]
        return check.accepts(response.status_code)

    try:
        wait_for(
            answers,
            what=f"{check.method} {target} to answer "
            f"{check.status if check.status is not None else '2xx'} ({check.origin})",
            timeout=timeout,
            interval=0.2,
            retry_on=httpx.TransportError,
        )
    except WaitTimeout as exc:
        if not seen:
            raise
        raise WaitTimeout(f"{exc}; it answered {seen[0]}") from exc


class LiveRelease:
    """One release under load, in progress. Use as a context manager: leaving the block
    stops the load and the sampler whatever happened.

    Instants are epoch seconds on the run's time base (:mod:`pytest_rollout.clock`).
    """

    def __init__(
        self,
        *,
        experiment: str,
        label: str,
        namespace: Namespace,
        manifests: ManifestSet,
        target: ReleaseTarget,
        variant: Variant,
        serving: ServingCheck,
        start_load: LoadStarter,
        rate: float,
        max_duration: float,
        timeout: float,
        progress: ProgressSink | None = None,
        sample_resources: bool = False,
        strategy: str | None = None,
        on_finish: Callable[[ReleaseRun], None] | None = None,
    ) -> None:
        self.experiment = experiment
        self.label = label
        self.namespace = namespace
        self.manifests = manifests
        self.target = target
        self.variant = variant
        self.serving = serving
        self.rate = rate
        self.timeout = timeout
        self._start_load = start_load
        self._max_duration = max_duration
        self._progress = progress
        self._sample_resources = sample_resources
        self.strategy = strategy
        self._on_finish = on_finish
        self._load: BackgroundLoad | None = None
        self._handle: RolloutHandle | None = None
        self._stage = "Deploying"
        self.released_at: float | None = None
        self.settled_at: float | None = None
        self.stable_versions: frozenset[str] = frozenset()
        self.samples: list[StatusSample] = []
        self.resources: list[ResourceSample] = []
        self._stop = threading.Event()
        self._sampler: threading.Thread | None = None
        self._sampler_error: BaseException | None = None
        self._notes: list[EventView] = []

    # -- the procedure -----------------------------------------------------------------------

    def start(self) -> LiveRelease:
        """Deploy, wait until the route serves, put a second of load on, release."""
        namespace, target = self.namespace, self.target
        self._report()
        namespace.apply(self.manifests)
        # Everything the set deploys (a judge beside the Rollout, say) serves before the
        # release, not only the workload released.
        for manifest in self.manifests:
            if manifest.kind in WORKLOAD_KINDS:
                namespace.wait_rolled_out(manifest.name, timeout=self.timeout)
        url = namespace.route_url(target.route)
        wait_serving(url, self.serving)
        if target.kind == "Rollout":
            self._handle = namespace.rollout(target.name)
        self._stage = "Warming up"
        load = self._load = self._start_load(url, rate=self.rate, duration=self._max_duration)
        warmup = math.ceil(self.rate)
        wait_for(
            lambda: len(load.log) >= warmup,
            what=f"{warmup} requests (a second of steady load) before the release",
            timeout=_WARMUP_TIMEOUT,
            interval=0.1,
        )
        self.stable_versions = self._versions_before_release(load.log)
        self._stage = "Rolling out"
        self._sample()  # the state before the release, for what the first change changed
        self.released_at = epoch_now()
        namespace.release(target.name, self.variant)
        self._sampler = threading.Thread(
            target=self._sample_loop, name=f"pytest-rollout-sampler {self.label}", daemon=True
        )
        self._sampler.start()
        return self

    def wait_settled(
        self, until: Sequence[str] = SETTLED, *, timeout: float | None = None
    ) -> float:
        """Wait until the workload settles — a Rollout in one of the phases ``until``, a
        Deployment rolled out — and return that instant."""
        limit = timeout if timeout is not None else self.timeout
        if self._handle is None:
            self.namespace.wait_rolled_out(self.target.name, timeout=limit)
        else:
            handle = self._handle
            wanted = tuple(until)
            last: list[RolloutView] = []

            def settled() -> bool:
                self._raise_sampler_error()
                view = handle.status()
                last[:] = [view]
                return view.phase in wanted

            try:
                wait_for(
                    settled,
                    what=f"Rollout/{handle.name} to be {' or '.join(wanted)}",
                    timeout=limit,
                    interval=0.05,
                )
            except WaitTimeout as exc:
                raise WaitTimeout(f"{exc}; {self._describe(last)}") from exc
        self.settled_at = epoch_now()
        return self.settled_at

    def wait_for_phase(self, phase: str, *, timeout: float | None = None) -> RolloutView:
        """Wait until the Rollout is in ``phase`` (the handle's own wait)."""
        return self.handle.wait_for_phase(phase, timeout=timeout or self.timeout)

    def finish(self, *, tail: float) -> ReleaseRun:
        """Keep the load on for ``tail`` seconds after the run settled (or after now), then
        stop everything and return what was measured."""
        if self.released_at is None:
            raise RolloutError(f"{self.label}: finish() before start()")
        if self.settled_at is None:
            self.settled_at = epoch_now()
        load = self._require_load()
        end = self.settled_at + tail
        wait_for(
            lambda: _covers(load.log, end),
            what=f"the traffic log to cover {tail:g}s after the release settled",
            timeout=tail + _COVER_MARGIN,
            interval=0.1,
        )
        self._stop_sampler()
        log = load.stop()
        self._raise_sampler_error()
        run = self._run(log, tail)
        if self._on_finish is not None:
            self._on_finish(run)
        _check_version(run)
        return run

    def close(self) -> None:
        """Stop the load and the sampler (idempotent). The progress display is the
        experiment's, shared by its releases: its owner closes it."""
        self._stop_sampler()
        if self._load is not None and self._load.running:
            self._load.stop()

    def __enter__(self) -> LiveRelease:
        return self.start() if self.released_at is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- observation -------------------------------------------------------------------------

    @property
    def log(self) -> TrafficLog:
        """The requests completed so far (the final log once finished)."""
        return self._require_load().log

    @property
    def handle(self) -> RolloutHandle:
        if self._handle is None:
            raise RolloutError(
                f"{self.label}: {self.target.kind}/{self.target.name} is not a Rollout"
            )
        return self._handle

    def status(self) -> RolloutView | None:
        return self._handle.status() if self._handle is not None else None

    def note(self, reason: str, message: str, *, at: float, type: str = "Normal") -> None:
        """Add an event of the experiment's own — an instant it observed, an action it took —
        to the run's events (``events.log``, the timeline), among the workload's by time.
        Notes taken after :meth:`finish` are not in its run."""
        self._notes.append(EventView(at, type, reason, message, "Experiment", self.experiment))

    # -- internals ---------------------------------------------------------------------------

    def _require_load(self) -> BackgroundLoad:
        if self._load is None:
            raise RolloutError(f"{self.label}: the load has not started")
        return self._load

    def _versions_before_release(self, log: TrafficLog) -> frozenset[str]:
        versions = frozenset(v for v in log.by_version() if v is not None)
        if not versions:
            statuses = ", ".join(f"{s}={n}" for s, n in sorted(log.by_status().items()))
            raise ConfigError(
                f"[version]: none of the {len(log)} responses before the release carried a "
                f"version the config can read (statuses: {statuses or 'none'}); check the "
                "[version] header/json keys against what the service answers"
            )
        return versions

    def _sample_loop(self) -> None:
        # Samples are due by the clock, every SAMPLE_INTERVAL, whatever a sample took; one that
        # overran is followed at once by the next, without a burst to catch up.
        try:
            due = time.monotonic()
            while True:
                self._sample()
                due = max(due + SAMPLE_INTERVAL, time.monotonic())
                if self._stop.wait(due - time.monotonic()):
                    return
        except BaseException as exc:  # surfaced by the test thread's next wait or finish()
            self._sampler_error = exc

    def _sample(self) -> None:
        now = epoch_now()
        view = self.status()
        if view is not None:
            self.samples.append(
                StatusSample(
                    now,
                    view.phase,
                    view.current_step_index,
                    self.target.steps,
                    view.canary_weight,
                    view.stable_hash,
                    view.canary_hash,
                )
            )
        if self._sample_resources:
            self.resources.append(self.namespace.resources())
        self._report(view)

    def _report(self, view: RolloutView | None = None) -> None:
        if self._progress is None:
            return
        log = self._load.log if self._load is not None else None
        analysis = None
        if self._handle is not None and view is not None:
            runs = self._handle.analysis_runs()
            analysis = runs[-1].phase if runs else None
        now = epoch_now()
        steps = self.target.steps
        step = None
        if self.samples and view is not None:
            step = self.samples[-1].step_number
        self._progress.update(
            ProgressSnapshot(
                experiment=self.experiment,
                phase=view.phase if view is not None else self._stage,
                step=step,
                steps=steps,
                weight=view.canary_weight if view is not None else None,
                achieved_rate=float(log.count(now - 1.0, now)) if log is not None else 0.0,
                errors_by_version=_errors_by_version(log, self.released_at) if log else {},
                analysis_phase=analysis,
                run=self.label,
            )
        )

    def _stop_sampler(self) -> None:
        self._stop.set()
        if self._sampler is not None and self._sampler is not threading.current_thread():
            self._sampler.join(timeout=5.0)

    def _raise_sampler_error(self) -> None:
        if self._sampler_error is not None:
            raise RolloutError(
                f"{self.label}: observing the release failed: "
                f"{type(self._sampler_error).__name__}: {self._sampler_error}"
            ) from self._sampler_error

    def _run(self, log: TrafficLog, tail: float) -> ReleaseRun:
        assert self.released_at is not None
        assert self.settled_at is not None
        handle = self._handle
        view = handle.status() if handle is not None else None
        events = _with_notes(
            handle.events() if handle is not None else self.namespace.events(), self._notes
        )
        runs = handle.analysis_runs() if handle is not None else []
        extra: dict[str, Any] = {}
        if self.strategy is not None:
            extra["strategy"] = self.strategy
        if self.resources:
            extra["resources"] = [
                {
                    "t": r.t,
                    "ready": r.ready,
                    "not_ready": r.not_ready,
                    "memory_bytes": r.memory_bytes,
                }
                for r in self.resources
            ]
        return ReleaseRun(
            label=self.label,
            workload=self.target.name,
            kind=self.target.kind,
            variant=self.variant,
            log=log,
            released_at=self.released_at,
            settled_at=self.settled_at,
            stable_versions=self.stable_versions,
            view=view,
            events=tuple(events),
            analysis_runs=tuple(runs),
            allowance=self.namespace.rollback_allowance,
            samples=tuple(self.samples),
            first_weight=self.target.first_weight,
            steps=self.target.steps,
            tail=tail,
            extra=extra,
        )

    def _describe(self, last: list[RolloutView]) -> str:
        view = last[0] if last else None
        state = (
            f"it is {view.phase} ({view.message or 'no message'}), step "
            f"{view.current_step_index}, canary weight {view.canary_weight}"
            if view is not None
            else "no status was read"
        )
        recent: list[str] = []
        with contextlib.suppress(RolloutError):
            recent = [f"{e.reason}: {e.message}" for e in self.handle.events()[-6:]]
        return f"{state}; recent events: {' | '.join(recent) or 'none'}"


def _covers(log: TrafficLog, instant: float) -> bool:
    """Whether ``log`` has a completed request sent at or after ``instant``."""
    records = log.records
    return bool(records) and records[-1].sent >= instant


def _with_notes(events: Sequence[EventView], notes: Sequence[EventView]) -> list[EventView]:
    """``events`` in their own order, each note before the first event later than it."""
    merged = list(events)
    for note in sorted(notes, key=lambda e: e.timestamp):
        index = next((i for i, e in enumerate(merged) if e.timestamp > note.timestamp), len(merged))
        merged.insert(index, note)
    return merged


def _errors_by_version(log: TrafficLog, since: float | None) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for record in log.in_window(since, None):
        if record.error is not None or (record.status or 0) >= 500:
            counts[record.version or "none"] += 1
    return dict(counts)


def _check_version(run: ReleaseRun) -> None:
    """The variant's declared ``version`` is what its pods answered, when they answered."""
    declared = run.variant.version
    seen = run.new_versions_seen()
    if declared is None or not seen:
        return
    if seen != {declared}:
        counts = run.log.by_version(run.released_at, None)
        answered = ", ".join(f"{v!r} ({counts.get(v, 0)} requests)" for v in sorted(seen))
        raise ConfigError(
            f"{run.variant.origin}: version = {declared!r}, but the release's pods answered "
            f"{answered}; fix [variants.{run.variant.name}].version or the variant's env"
        )
