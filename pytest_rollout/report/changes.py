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

_STEP = re.compile(r"step (\d+/\d+) completed")
_SCALE = re.compile(r"from (\d+) to (\d+)")
_WEIGHT = re.compile(r"Traffic weight updated (.+)$")


def status_change(run: RunTimeline, t: float) -> str | None:
    """The change of weight or hashes nearest to ``t`` (epoch s), as ``weight 5 → 0, canary
    hash 6f7c → (none)``; None when the samples show none near it."""
    best: tuple[float, StatusSample, StatusSample] | None = None
    for before, after in zip(run.status, run.status[1:], strict=False):
        if not t - _BEFORE_S <= after.t <= t + _AFTER_S or not _differs(before, after):
            continue
        distance = abs(after.t - t)
        if best is None or distance < best[0]:
            best = (distance, before, after)
    return None if best is None else describe(best[1], best[2])


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
        change = status_change(run, event.timestamp)
        return f"({change})" if change else "(no change seen)"
    if step := _STEP.search(message):
        return step.group(1)
    if event.reason == "ScalingReplicaSet" and (scale := _SCALE.search(message)):
        return f"{scale.group(1)}→{scale.group(2)}"
    return ""


def _differs(a: StatusSample, b: StatusSample) -> bool:
    return (a.weight, a.stable_hash, a.canary_hash) != (b.weight, b.stable_hash, b.canary_hash)


def _shown(value: object) -> str:
    return "(none)" if value is None or value == "" else str(value)
