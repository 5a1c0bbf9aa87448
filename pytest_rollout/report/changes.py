"""What an event changed, read from the status samples around it.

Argo's ``TrafficWeightUpdated`` message lists only weight changes (``to 5``, ``from 5 to 0``);
when only the ReplicaSets behind the weights changed, it reads ``Traffic weight updated `` and
nothing more. The event text is kept as Argo wrote it; the report shows beside it what the
status samples saw change: the weight, and the stable and canary pod-template hashes.
"""

from __future__ import annotations

import re

from pytest_rollout.backends.base import EventView
from pytest_rollout.report.model import RunTimeline, StatusSample

WEIGHT_EVENT = "TrafficWeightUpdated"

# The status is sampled about every 0.25 s and an event may be stamped a moment before or
# after the sample that shows its effect: look a little both ways.
_BEFORE_S = 0.5
_AFTER_S = 1.5

_NOT_SAMPLED = "not sampled"
_FIRST_SAMPLE = "at the first sample"

_STEP = re.compile(r"step (\d+/\d+) completed")
_SCALE = re.compile(r"from (\d+) to (\d+)")
_WEIGHT = re.compile(r"Traffic weight updated (.+)$")


def status_change(run: RunTimeline, t: float) -> str:
    """What the status samples show changing nearest to ``t`` (epoch s): ``weight 5 → 0,
    canary hash 6f7c → (none)``; when no sample precedes ``t``, the weight and hashes the first
    samples after it show; else ``no change seen``."""
    best: tuple[float, StatusSample, StatusSample] | None = None
    for before, after in zip(run.status, run.status[1:], strict=False):
        if not t - _BEFORE_S <= after.t <= t + _AFTER_S or not _differs(before, after):
            continue
        distance = abs(after.t - t)
        if best is None or distance < best[0]:
            best = (distance, before, after)
    if best is not None:
        return describe(best[1], best[2])
    if not run.status or run.status[0].t > t + _AFTER_S:
        return f"{_NOT_SAMPLED} (before the status was first read)"
    if run.status[0].t > t - _BEFORE_S:
        first = run.status[0]
        return (
            f"{_FIRST_SAMPLE}: weight {_shown(first.weight)}, stable hash "
            f"{_shown(first.stable_hash)}, canary hash {_shown(first.canary_hash)}"
        )
    return "no change seen"


def describe(before: StatusSample, after: StatusSample) -> str:
    parts = []
    if before.weight != after.weight:
        parts.append(f"weight {_shown(before.weight)} → {_shown(after.weight)}")
    if before.stable_hash != after.stable_hash:
        parts.append(f"stable hash {_shown(before.stable_hash)} → {_shown(after.stable_hash)}")
    if before.canary_hash != after.canary_hash:
        parts.append(f"canary hash {_shown(before.canary_hash)} → {_shown(after.canary_hash)}")
    return ", ".join(parts)


def short_label(event: EventView, run: RunTimeline) -> str:
    """A few characters to print beside the event's marker on the timeline."""
    message = event.message
    if event.reason == WEIGHT_EVENT:
        match = _WEIGHT.search(message.rstrip())
        if match:
            return match.group(1)
        return f"({_compact(status_change(run, event.timestamp), run)})"
    if step := _STEP.search(message):
        return step.group(1)
    if event.reason == "ScalingReplicaSet" and (scale := _SCALE.search(message)):
        return f"{scale.group(1)}→{scale.group(2)}"
    return ""


def _compact(change: str, run: RunTimeline) -> str:
    """A chart-sized form of :func:`status_change`'s text."""
    if change.startswith(_FIRST_SAMPLE):
        return f"canary {_shown(run.status[0].canary_hash)}"
    if change.startswith(_NOT_SAMPLED):
        return _NOT_SAMPLED
    return change


def _differs(a: StatusSample, b: StatusSample) -> bool:
    return (a.weight, a.stable_hash, a.canary_hash) != (b.weight, b.stable_hash, b.canary_hash)


def _shown(value: object) -> str:
    return "(none)" if value is None or value == "" else str(value)
