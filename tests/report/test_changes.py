"""What a weight event changed, read from the status samples around it."""

from __future__ import annotations

from pytest_rollout.backends.base import EventView
from pytest_rollout.report.changes import short_label, status_change
from pytest_rollout.report.model import RunTimeline, StatusSample

T0 = 500.0


def _sample(t: float, weight: int, stable: str, canary: str | None) -> StatusSample:
    return StatusSample(T0 + t, "Progressing", 1, 3, weight, stable, canary)


RUN = RunTimeline(
    label="run",
    traffic=None,
    released_at=T0,
    status=(
        _sample(0.0, 0, "aaa", "aaa"),
        _sample(0.25, 0, "aaa", "bbb"),  # only the canary's ReplicaSet changed
        _sample(0.5, 0, "aaa", "bbb"),
        _sample(1.0, 5, "aaa", "bbb"),
        _sample(5.0, 5, "aaa", "bbb"),
        _sample(5.25, 0, "aaa", None),
    ),
)


def _event(t: float, message: str, reason: str = "TrafficWeightUpdated") -> EventView:
    return EventView(T0 + t, "Normal", reason, message, "Rollout", "svc")


def test_hash_only_change_is_described() -> None:
    assert status_change(RUN, T0 + 0.3) == "canary hash aaa → bbb"
    assert short_label(_event(0.3, "Traffic weight updated "), RUN) == "(canary hash aaa → bbb)"


def test_nearest_change_is_chosen() -> None:
    assert status_change(RUN, T0 + 1.0) == "weight 0 → 5"
    assert status_change(RUN, T0 + 5.2) == "weight 5 → 0, canary hash bbb → (none)"


def test_no_change_near_the_event() -> None:
    assert status_change(RUN, T0 + 3.0) == "no change seen"
    assert short_label(_event(3.0, "Traffic weight updated "), RUN) == "(no change seen)"


def test_event_before_or_at_the_first_sample() -> None:
    assert status_change(RUN, T0 - 9.0) == "not sampled (before the status was first read)"
    late = RunTimeline(
        "late", None, T0, status=(_sample(0.5, 0, "aaa", "bbb"), _sample(3.0, 0, "aaa", "bbb"))
    )
    assert status_change(late, T0 + 0.3) == (
        "at the first sample: weight 0, stable hash aaa, canary hash bbb"
    )
    bare = _event(0.3, "Traffic weight updated ")
    assert short_label(bare, late) == "(canary bbb)"
    assert short_label(_event(-9.0, "Traffic weight updated "), RUN) == "(not sampled)"


def test_labels_of_other_events() -> None:
    assert short_label(_event(1.0, "Traffic weight updated from 0 to 5"), RUN) == "from 0 to 5"
    step = _event(1.0, "Rollout step 1/3 completed (setWeight: 5)", "RolloutStepCompleted")
    assert short_label(step, RUN) == "1/3"
    scale = _event(
        0.1, "Scaled up ReplicaSet svc-bbb (revision 2) from 0 to 1", "ScalingReplicaSet"
    )
    assert short_label(scale, RUN) == "0→1"
    assert short_label(_event(0.0, "Rollout updated to revision 2", "RolloutUpdated"), RUN) == ""
