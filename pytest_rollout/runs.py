"""What one release under load measured, and the questions experiments ask of it.

A :class:`ReleaseRun` holds the traffic log, the workload's events and AnalysisRuns and the
status samples taken during the run. Its ``assert_*`` methods raise with the evidence: the
numbers that decided, and the event lines that explain them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_rollout.backends.base import (
    AnalysisRunView,
    EventView,
    RollbackAllowance,
    RolloutView,
)
from pytest_rollout.config import Variant
from pytest_rollout.errors import InconclusiveError
from pytest_rollout.load import RequestRecord, TrafficLog

ABORTED = "RolloutAborted"
COMPLETED = "RolloutCompleted"
ANALYSIS_VERDICTS = ("Successful", "Failed", "Error", "Inconclusive")

_METRIC_IN_MESSAGE = re.compile(r'Metric "(?P<metric>[^"]+)" assessed (?P<phase>\w+)')
_VALUE_TEXT_CHARS = 2000
"""Of a measurement's value, what the timeline keeps (a web answer can be any JSON)."""
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


@dataclass(frozen=True)
class StatusSample:
    """The workload's status at one instant of the run (epoch seconds)."""

    t: float
    phase: str
    step: int | None
    """Argo's ``currentStepIndex``: the index of the step being executed (0-based)."""
    steps: int | None
    weight: int
    stable_hash: str | None
    canary_hash: str | None

    @property
    def step_number(self) -> int | None:
        """The step under way, 1-based as ``kubectl argo rollouts get`` shows it (``Step:
        2/5``); the last step once every step is done."""
        if self.step is None:
            return None
        return self.step + 1 if self.steps is None else min(self.step + 1, self.steps)


@dataclass(frozen=True)
class AbortCause:
    """Why a Rollout aborted, read from its ``RolloutAborted`` message and AnalysisRuns."""

    at: float
    message: str
    metric: str | None
    """The metric whose verdict aborted it; None for a manual abort or a progress deadline."""
    phase: str | None
    """That metric's phase: ``Failed``, ``Error`` or ``Inconclusive``."""

    def describe(self) -> str:
        if self.metric is None:
            return f"not by a metric ({self.message})"
        return f"metric {self.metric!r} assessed {self.phase}"


@dataclass(frozen=True)
class BlastRadius:
    """A release's reach: its share of all requests from the release to the rollback.

    The rollback is the abort plus the backend's allowance for the data plane to apply
    weight 0; without an abort the window runs to the end of the log. Times are epoch seconds.
    """

    version: str
    released_at: float
    abort_at: float | None
    rolled_back_at: float | None
    allowance: float
    total_requests: int
    bad_requests: int
    requests_after_rollback: int
    bad_requests_after_rollback: int
    first_bad_at: float | None
    last_bad_at: float | None

    @property
    def bad_share(self) -> float:
        return self.bad_requests / self.total_requests if self.total_requests else math.nan

    @property
    def time_to_abort_s(self) -> float | None:
        if self.abort_at is None or self.first_bad_at is None:
            return None
        return self.abort_at - self.first_bad_at

    @property
    def time_to_zero_bad_s(self) -> float | None:
        if self.first_bad_at is None or self.last_bad_at is None:
            return None
        return self.last_bad_at - self.first_bad_at

    def describe(self) -> str:
        if self.rolled_back_at is not None:
            rollback = self.rolled_back_at - self.released_at
            window = f"between the release and the rollback at +{rollback:.1f}s"
        else:
            window = "after the release (no rollback)"
        abort = (
            f"; abort {self.time_to_abort_s:.1f}s after its first request"
            if self.time_to_abort_s is not None
            else ""
        )
        return (
            f"{self.bad_requests:,} of {self.total_requests:,} requests hit {self.version!r} "
            f"{window}{abort}"
        )

    def metrics(self) -> dict[str, Any]:
        """The summary keys of a containment experiment."""
        return {
            "bad_version": self.version,
            "bad_share": self.bad_share,
            "bad_requests": self.bad_requests,
            "total_requests": self.total_requests,
            "bad_requests_after_rollback": self.bad_requests_after_rollback,
            "requests_after_rollback": self.requests_after_rollback,
            "time_to_abort_s": _rounded(self.time_to_abort_s),
            "time_to_zero_bad_s": _rounded(self.time_to_zero_bad_s),
            "rolled_back_at_s": _rounded(
                None if self.rolled_back_at is None else self.rolled_back_at - self.released_at
            ),
            "rollback_allowance_s": self.allowance,
        }


@dataclass(frozen=True)
class ReleaseRun:
    """One release of ``variant`` to ``workload`` under open-loop load, as measured."""

    label: str
    workload: str
    kind: str
    """``Rollout`` or ``Deployment``."""
    variant: Variant
    log: TrafficLog
    released_at: float
    settled_at: float
    """When the workload reached the state the run waited for."""
    stable_versions: frozenset[str]
    """The versions that served before the release."""
    view: RolloutView | None
    events: tuple[EventView, ...]
    analysis_runs: tuple[AnalysisRunView, ...]
    allowance: RollbackAllowance
    samples: tuple[StatusSample, ...] = ()
    first_weight: int | None = None
    """The Rollout's first ``setWeight``: the share of traffic its first step promises."""
    steps: int | None = None
    tail: float = 0.0
    """Seconds of load kept on after the run settled."""
    extra: Mapping[str, Any] = field(default_factory=dict)

    # -- versions ----------------------------------------------------------------------------

    @property
    def new_version(self) -> str | None:
        """The version the release's pods answer with: the variant's declared ``version``, or
        the one version that served after the release and not before."""
        if self.variant.version is not None:
            return self.variant.version
        new = self.new_versions_seen()
        return next(iter(new)) if len(new) == 1 else None

    def new_versions_seen(self) -> set[str]:
        return {
            v for v in self.log.by_version(self.released_at, None) if v is not None
        } - self.stable_versions

    # -- failures ----------------------------------------------------------------------------

    def failures(self, start: float | None = None, end: float | None = None) -> dict[str, int]:
        """Client-visible failures by status code or transport error kind: 5xx and no answer."""
        counts = {
            str(code): n
            for code, n in sorted(self.log.by_status(start, end).items())
            if code >= 500
        }
        counts.update({kind: n for kind, n in sorted(self.log.by_error(start, end).items()) if n})
        return counts

    def failure_count(self, start: float | None = None, end: float | None = None) -> int:
        return sum(self.failures(start, end).values())

    def failed_requests(
        self, start: float | None = None, end: float | None = None
    ) -> list[RequestRecord]:
        """The requests of the window that failed client-visibly, in the order sent."""
        return [r for r in self.log.in_window(start, end) if is_client_failure(r)]

    def failures_by_version(
        self, start: float | None = None, end: float | None = None
    ) -> dict[str, int]:
        """Client-visible failures by the version that answered (``none``: no answer)."""
        counts: dict[str, int] = {}
        for record in self.failed_requests(start, end):
            key = record.version or "none"
            counts[key] = counts.get(key, 0) + 1
        return counts

    # -- the Rollout's story -----------------------------------------------------------------

    def first_event(self, reason: str) -> EventView | None:
        return next((e for e in self.events if e.reason == reason), None)

    def reasons(self) -> list[str]:
        return [e.reason for e in self.events]

    def event_lines(self) -> list[str]:
        return [
            f"{e.timestamp - self.released_at:+.1f}s {e.type} {e.reason}: {e.message}"
            for e in self.events
        ]

    def metric_phases(self) -> dict[str, str]:
        """Each metric's final phase over every AnalysisRun of the release (the last run that
        measured it wins)."""
        phases: dict[str, str] = {}
        for run in self.analysis_runs:
            phases.update(run.metric_phases)
        return phases

    def abort_cause(self) -> AbortCause | None:
        """Why the Rollout aborted, or None when it did not."""
        event = self.first_event(ABORTED)
        if event is None and (self.view is None or not self.view.aborted):
            return None
        at = event.timestamp if event is not None else self.settled_at
        message = event.message if event is not None else (self.view.message if self.view else "")
        found = _METRIC_IN_MESSAGE.search(message)
        if found is not None:
            return AbortCause(at, message, found["metric"], found["phase"])
        for run in self.analysis_runs:
            if run.phase in ("Failed", "Error") and run.message:
                found = _METRIC_IN_MESSAGE.search(run.message)
                if found is not None and run.message in message:
                    return AbortCause(at, message, found["metric"], found["phase"])
        return AbortCause(at, message, None, None)

    def blast_radius(self, version: str | None = None) -> BlastRadius:
        """The reach of ``version`` (default: the release's own version)."""
        bad = version if version is not None else self.new_version
        if bad is None:
            raise InconclusiveError(
                f"{self.label}: the release served no request with a new version, so its reach "
                f"was not observed (versions after the release: "
                f"{_versions(self.log.by_version(self.released_at, None))}; before: "
                f"{sorted(self.stable_versions)})"
            )
        cause = self.abort_cause()
        abort_at = cause.at if cause is not None else None
        rolled_back_at = abort_at + self.allowance.seconds if abort_at is not None else None
        return BlastRadius(
            version=bad,
            released_at=self.released_at,
            abort_at=abort_at,
            rolled_back_at=rolled_back_at,
            allowance=self.allowance.seconds,
            total_requests=self.log.count(self.released_at, rolled_back_at),
            bad_requests=self.log.by_version(self.released_at, rolled_back_at).get(bad, 0),
            requests_after_rollback=(
                self.log.count(rolled_back_at, None) if rolled_back_at is not None else 0
            ),
            bad_requests_after_rollback=(
                self.log.by_version(rolled_back_at, None).get(bad, 0)
                if rolled_back_at is not None
                else 0
            ),
            first_bad_at=self.log.first_seen(bad),
            last_bad_at=self.log.last_seen(bad),
        )

    # -- assertions --------------------------------------------------------------------------

    def assert_load_held(self) -> None:
        """The generator kept its schedule, so the load was what the experiment says it was."""
        reason = self.log.inconclusive_reason
        if reason is not None:
            raise InconclusiveError(f"{self.label}: the load generator fell behind: {reason}")

    def assert_aborted_by(self, metric: str, *, phases: Sequence[str] = ("Failed",)) -> AbortCause:
        """The Rollout aborted because ``metric`` was assessed one of ``phases``.

        An abort for any other reason (an analysis Error where a Failed verdict was expected,
        another metric, a manual abort, a progress deadline) fails with the event lines.
        """
        cause = self.abort_cause()
        context = self._context()
        if cause is None:
            raise AssertionError(
                f"{self.label}: expected metric {metric!r} to abort the release, but the "
                f"Rollout never aborted (phase {self._phase()}){context}"
            )
        if cause.metric != metric or cause.phase not in phases:
            raise AssertionError(
                f"{self.label}: expected an abort by metric {metric!r} assessed "
                f"{' or '.join(phases)}, but it was aborted {cause.describe()}: "
                f"{cause.message}{context}"
            )
        return cause

    def assert_completed(self) -> None:
        """The release reached every client: the workload finished rolling out (a Rollout:
        Healthy with ``RolloutCompleted``), and after it only the new version served."""
        context = self._context()
        if self.kind == "Rollout":
            if self.view is None or self.view.phase != "Healthy" or self.view.aborted:
                raise AssertionError(
                    f"{self.label}: expected the release to complete, but the Rollout is "
                    f"{self._phase()}: {self.view.message if self.view else ''}{context}"
                )
            if self.first_event(COMPLETED) is None:
                raise AssertionError(f"{self.label}: no {COMPLETED} event{context}")
        after = self.settled_at + self.allowance.seconds
        tail = self.log.by_version(after, None)
        if not tail:
            raise InconclusiveError(
                f"{self.label}: no request completed more than {self.allowance.seconds:g}s after "
                f"the release completed; cannot show every client reaches it"
            )
        expected = self.new_version
        if expected is None or set(tail) != {expected}:
            raise AssertionError(
                f"{self.label}: after completion every request should reach "
                f"{expected!r}; seen {_versions(tail)}{context}"
            )

    def assert_no_errors(self) -> None:
        """No client-visible failure (5xx, refused, reset, timeout) from the release on."""
        failures = self.failures(self.released_at, None)
        if failures:
            total = self.log.count(self.released_at, None)
            raise AssertionError(
                f"{self.label}: {sum(failures.values()):,} of {total:,} requests after the "
                f"release failed (expected 0): {failures}; by version: "
                f"{self.failures_by_version(self.released_at, None)}{self._context()}"
            )

    def assert_contained(self, max_share: float | None = None) -> BlastRadius:
        """At most ``max_share`` (default: the first ``setWeight``) of the requests from the
        release to the rollback hit the release, and none after the rollback.

        Needs an abort and enough traffic after the rollback to show it held: the tail less the
        rollback allowance and a second of margin, at the run's rate (else *inconclusive*).
        """
        bound = max_share if max_share is not None else self._default_share()
        radius = self.blast_radius()
        summary = radius.describe()
        if radius.rolled_back_at is None:
            raise AssertionError(
                f"{self.label}: the release was never rolled back: {summary}{self._context()}"
            )
        min_after = int(self.log.target_rate * max(self.tail - self.allowance.seconds - 1.0, 0))
        if radius.requests_after_rollback < max(min_after, 1):
            raise InconclusiveError(
                f"{self.label}: only {radius.requests_after_rollback} requests after the "
                f"rollback (< {max(min_after, 1)}); cannot show it held. {summary}"
            )
        if not radius.bad_share <= bound:
            raise AssertionError(
                f"{self.label}: blast radius {radius.bad_share:.2%} > {bound:.0%}: {summary}"
                f"{self._context()}"
            )
        if radius.bad_requests_after_rollback:
            raise AssertionError(
                f"{self.label}: {radius.bad_requests_after_rollback} requests hit "
                f"{radius.version!r} after the rollback (of {radius.requests_after_rollback}): "
                f"{summary}{self._context()}"
            )
        return radius

    def assert_version_served(self) -> str:
        """The release took traffic (else the run shows nothing about it); its version."""
        version = self.new_version
        served = self.log.by_version(self.released_at, None).get(version, 0) if version else 0
        if not served:
            raise InconclusiveError(
                f"{self.label}: the release served no request (versions after the release: "
                f"{_versions(self.log.by_version(self.released_at, None))})"
            )
        assert version is not None
        return version

    # -- evidence ----------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """The run's own numbers, for summary.json."""
        return {
            "label": self.label,
            "requests": len(self.log),
            "errors": self.failure_count(self.released_at, None),
            "errors_by_status": self.failures(self.released_at, None),
            "by_version": self.log.summary()["by_version"],
            "stable_versions": sorted(self.stable_versions),
            "new_version": self.new_version,
            "release_at_s": round(self.released_at - self.log.started_at, 3),
            "settled_after_s": round(self.settled_at - self.released_at, 3),
            "phase": self.view.phase if self.view else None,
            "load_s": round(self.log.duration, 3),
            "rate": self.log.target_rate,
            "achieved_rate": round(self.log.achieved_rate, 1),
            "lateness_p99_ms": _ms(self.log.lateness_p99),
            "rollback_allowance": self.allowance.to_json(),
        }

    def timeline(self, traffic_file: str) -> dict[str, Any]:
        """This run's entry of ``timeline.json`` (the dashboard's input)."""
        cause = self.abort_cause()
        radius_window = None
        rollback_at = None
        if self.new_version is not None and cause is not None:
            rollback_at = cause.at + self.allowance.seconds
            radius_window = [self.released_at, rollback_at]
        return {
            "label": self.label,
            "traffic": traffic_file,
            "released_at": self.released_at,
            "status": [
                {
                    "t": s.t,
                    "phase": s.phase,
                    "step": s.step_number,
                    "steps": s.steps,
                    "weight": s.weight,
                    "stable_hash": s.stable_hash,
                    "canary_hash": s.canary_hash,
                }
                for s in self.samples
            ],
            "analysis": [
                measurement for run in self.analysis_runs for measurement in _measurements(run)
            ],
            "events": [
                {
                    "t": e.timestamp,
                    "type": e.type,
                    "reason": e.reason,
                    "message": e.message,
                    "kind": e.kind,
                    "name": e.name,
                }
                for e in self.events
            ],
            "window": {"blast_radius": radius_window, "rollback_at": rollback_at},
            "resources": list(self.extra.get("resources", [])),
            "strategy": self.extra.get("strategy"),
        }

    # -- helpers -----------------------------------------------------------------------------

    def _default_share(self) -> float:
        if self.first_weight is None:
            raise AssertionError(
                f"{self.label}: {self.kind}/{self.workload} has no setWeight step to bound the "
                "blast radius; pass max_share"
            )
        return self.first_weight / 100

    def _phase(self) -> str:
        return self.view.phase if self.view is not None else "unknown"

    def _context(self) -> str:
        lines = self.event_lines()
        phases = self.metric_phases()
        parts = []
        if phases:
            parts.append("metrics: " + ", ".join(f"{m}={p}" for m, p in phases.items()))
        if lines:
            parts.append("events:\n  " + "\n  ".join(lines))
        return ("\n" + "\n".join(parts)) if parts else ""


def is_client_failure(record: RequestRecord) -> bool:
    """Whether the client saw the request fail: a 5xx answer, or none at all."""
    return record.error is not None or (record.status or 0) >= 500


def thresholds(*conditions: str) -> list[float]:
    """The numbers an analysis condition compares against (``result[0] <= 0.05`` -> 0.05),
    for drawing: index literals (``result[0]``) and ``len(...) > 0`` guards are left out."""
    numbers: list[float] = []
    for condition in conditions:
        for clause in re.split(r"&&|\|\|", condition):
            if "len(" in clause:
                continue
            cleaned = re.sub(r"\[\s*\d+\s*\]", "", clause)
            for match in _NUMBER.finditer(cleaned):
                value = float(match.group())
                if value not in numbers:
                    numbers.append(value)
    return numbers


def _measurements(run: AnalysisRunView) -> list[dict[str, Any]]:
    out = []
    for metric in run.metrics:
        for m in metric.measurements:
            number = _first_number(m.value)
            out.append(
                {
                    "t": m.finished_at if m.finished_at is not None else m.started_at,
                    "run": run.name,
                    "metric": metric.name,
                    "phase": m.phase,
                    "value": number,
                    # A value that is no number (a web answer's JSON) is kept as text.
                    "value_text": m.value[:_VALUE_TEXT_CHARS]
                    if number is None and m.value
                    else None,
                    "message": m.message,
                    "success_condition": metric.success_condition or None,
                    "failure_condition": metric.failure_condition or None,
                    "thresholds": thresholds(metric.success_condition, metric.failure_condition),
                }
            )
    return out


def _first_number(value: str) -> float | None:
    """The number a measurement's value shows: the result (a Prometheus scalar or a vector's
    first element); None for a JSON object (a web answer), whose fields have no order."""
    if (value or "").lstrip().startswith("{"):
        return None
    match = _NUMBER.search(value or "")
    if match is None:
        return None
    number = float(match.group())
    return number if math.isfinite(number) else None


def _versions(counts: Mapping[str | None, int]) -> str:
    return ", ".join(f"{v or 'none'}={n}" for v, n in counts.items()) or "none"


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1e3, 3)
