"""What a release cost in pods and memory, and how far a bad one reached, from one run.

Pure functions over a :class:`~pytest_rollout.runs.ReleaseRun`'s measurements (its traffic
log, events, status samples and resource samples), for the ``strategy-cost`` kind
(:mod:`pytest_rollout.kinds.cost`). Resource samples are step values: each holds from its
instant to the next sample's.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from pytest_rollout.backends.base import ResourceSample
from pytest_rollout.errors import InconclusiveError
from pytest_rollout.runs import ReleaseRun

MIB = 2**20
WEIGHT_UPDATED = "TrafficWeightUpdated"
_WEIGHT_MOVE = re.compile(r"\bto (?P<weight>\d+)\s*$")
"""Argo's ``Traffic weight updated [from N] to M``."""
PEAK_MEMORY_BAND = 0.1
"""Memory counts as "at its peak" within this share of its rise above the baseline."""


def resource_points(run: ReleaseRun) -> list[ResourceSample]:
    """The run's resource samples (as its timeline keeps them: without the per-pod split),
    oldest first; inconclusive when it sampled none."""
    raw: Iterable[Mapping[str, Any]] = run.extra.get("resources", ())
    points = sorted(
        (
            ResourceSample(
                float(p["t"]), int(p["ready"]), int(p["not_ready"]), int(p["memory_bytes"]), {}
            )
            for p in raw
        ),
        key=lambda p: p.t,
    )
    if len(points) < 2:
        raise InconclusiveError(
            f"{run.label}: {len(points)} resource samples: pods and memory were not observed"
        )
    return points


@dataclass(frozen=True)
class Footprint:
    """Pods and memory of one release, against the state just before it."""

    baseline_pods: int
    baseline_memory_bytes: int
    peak_pods: int
    peak_ready_pods: int
    peak_pods_s: float
    """How long the pod count stood at its peak, summed over the run."""
    peak_memory_bytes: int
    peak_memory_s: float
    """How long memory stood within :data:`PEAK_MEMORY_BAND` of its rise from the peak."""
    pod_seconds_above_baseline: float
    mib_seconds_above_baseline: float
    back_to_baseline_s: float | None
    """From the release until the pod count was back at the baseline for good; None if it
    never was while sampled."""
    samples: int
    sampling_hz: float
    max_sample_gap_s: float

    @property
    def memory_over_baseline(self) -> float:
        return self.peak_memory_bytes / self.baseline_memory_bytes

    def metrics(self) -> dict[str, Any]:
        values = asdict(self)
        for key, value in values.items():
            if isinstance(value, float):
                values[key] = round(value, 3)
        values["memory_over_baseline"] = round(self.memory_over_baseline, 3)
        return values


def footprint(points: Sequence[ResourceSample], released_at: float) -> Footprint:
    """The footprint of a release from its resource samples; the baseline is the last sample
    taken before the release (else the first)."""
    before = [p for p in points if p.t < released_at]
    baseline = before[-1] if before else points[0]
    spans = [(p, later.t - p.t) for p, later in itertools.pairwise(points)]
    peak_pods = max(p.pods for p in points)
    peak_memory = max(p.memory_bytes for p in points)
    rise = peak_memory - baseline.memory_bytes
    near_peak = peak_memory - PEAK_MEMORY_BAND * max(rise, 0)
    above = [p for p in points if p.pods > baseline.pods]
    back: float | None = None
    if above:
        after_last = [p for p in points if p.t > above[-1].t]
        back = after_last[0].t - released_at if after_last else None
    else:
        back = 0.0
    gaps = [dt for _, dt in spans]
    duration = points[-1].t - points[0].t
    return Footprint(
        baseline_pods=baseline.pods,
        baseline_memory_bytes=baseline.memory_bytes,
        peak_pods=peak_pods,
        peak_ready_pods=max(p.ready for p in points),
        peak_pods_s=sum(dt for p, dt in spans if p.pods == peak_pods),
        peak_memory_bytes=peak_memory,
        peak_memory_s=sum(dt for p, dt in spans if p.memory_bytes >= near_peak),
        pod_seconds_above_baseline=sum(max(p.pods - baseline.pods, 0) * dt for p, dt in spans),
        mib_seconds_above_baseline=sum(
            max(p.memory_bytes - baseline.memory_bytes, 0) * dt for p, dt in spans
        )
        / MIB,
        back_to_baseline_s=back,
        samples=len(points),
        sampling_hz=(len(points) - 1) / duration if duration > 0 else 0.0,
        max_sample_gap_s=max(gaps) if gaps else 0.0,
    )


@dataclass(frozen=True)
class Reach:
    """How far a bad release got, and how fast it was taken back.

    The share is over the requests from the release to the rollback (the abort plus the
    backend's rollback allowance), or to the end of the run when nothing rolled it back.
    """

    bad_share: float
    bad_requests: int
    total_requests: int
    errors: int
    """Client-visible failures (5xx, no answer) from the release to the end of the run."""
    aborted_by: str | None
    time_to_abort_s: float | None
    """From the release to the abort."""
    rollback_s: float | None
    """From the first request the release served to the last (after it, none): 0 when it
    served none; None when nothing rolled it back."""
    abort_to_old_s: float | None
    """From the abort to the last request the release served (0 when none came after the
    abort): from then on the old version served everything. None without an abort."""

    def metrics(self) -> dict[str, Any]:
        values = asdict(self)
        for key, value in values.items():
            if isinstance(value, float):
                values[key] = round(value, 4 if key == "bad_share" else 3)
        return values


def reach(run: ReleaseRun) -> Reach:
    """The reach of the run's release (its own version)."""
    radius = run.blast_radius()
    cause = run.abort_cause()
    first, last = radius.first_bad_at, radius.last_bad_at
    if cause is None:
        rollback = 0.0 if first is None else None
        abort_to_old = None
    else:
        rollback = 0.0 if first is None or last is None else last - first
        abort_to_old = 0.0 if last is None else max(last - cause.at, 0.0)
    return Reach(
        bad_share=radius.bad_share,
        bad_requests=radius.bad_requests,
        total_requests=radius.total_requests,
        errors=run.failure_count(run.released_at, None),
        aborted_by=(cause.metric or cause.message) if cause is not None else None,
        time_to_abort_s=None if cause is None else cause.at - run.released_at,
        rollback_s=rollback,
        abort_to_old_s=abort_to_old,
    )


@dataclass(frozen=True)
class Rollback:
    """An operator's abort at a canary's largest weight, and how the old version took back
    its traffic."""

    weight: int
    """The canary's weight when it was aborted."""
    abort_to_old_s: float
    """From the abort to the last request the canary's version served."""
    weights_after_abort: tuple[int, ...]
    """The weights the router got after the abort, in order."""
    new_requests_after_abort: int
    requests_after_abort: int

    def metrics(self) -> dict[str, Any]:
        values = asdict(self)
        values["abort_to_old_s"] = round(self.abort_to_old_s, 3)
        values["weights_after_abort"] = list(self.weights_after_abort)
        return values


def rollback(run: ReleaseRun) -> Rollback:
    """The rollback after the operator's abort in ``run``; the weights are read from the
    Rollout's ``TrafficWeightUpdated`` events, which see every change a status sample may
    fall between."""
    cause = run.abort_cause()
    version = run.new_version
    if cause is None or version is None:
        raise InconclusiveError(
            f"{run.label}: no abort and release version to measure a rollback from "
            f"(abort: {cause}, version: {version})"
        )
    moves = [
        (event.timestamp, int(found["weight"]))
        for event in run.events
        if event.reason == WEIGHT_UPDATED
        and (found := _WEIGHT_MOVE.search(event.message)) is not None
    ]
    last = run.log.last_seen(version)
    return Rollback(
        weight=next((w for t, w in reversed(moves) if t <= cause.at), 0),
        abort_to_old_s=max((last or cause.at) - cause.at, 0.0),
        weights_after_abort=tuple(w for t, w in moves if t > cause.at),
        new_requests_after_abort=run.log.by_version(cause.at, None).get(version, 0),
        requests_after_abort=run.log.count(cause.at, None),
    )
