"""The questions a ReleaseRun answers, on hand-made traffic logs and events (pure logic)."""

from __future__ import annotations

import pytest

from pytest_rollout.backends.base import (
    AnalysisRunView,
    EventView,
    MeasurementView,
    MetricView,
    RolloutView,
)
from pytest_rollout.errors import InconclusiveError
from pytest_rollout.runs import thresholds
from tests.core.release_runs import RELEASE, T0, release_run, traffic

ABORT_MESSAGE = (
    "Rollout aborted update to revision 2: Step-based analysis phase error/failed: Metric "
    '"error-rate" assessed Failed due to failed (1) > failureLimit (0)'
)


def _event(t: float, reason: str, message: str = "") -> EventView:
    return EventView(t, "Normal", reason, message, "Rollout", "svc")


ABORTED = (_event(RELEASE, "RolloutUpdated"), _event(T0 + 4.0, "RolloutAborted", ABORT_MESSAGE))
# 100 req/s: 1 s of v1 only, then 5% bad for 3 s, then v1 only for 10 s.
CONTAINED = traffic([{"v1": 100}] + [{"v1": 95, "v2-bad": 5}] * 3 + [{"v1": 100}] * 10)


def test_blast_radius_counts_from_release_to_abort_plus_allowance() -> None:
    radius = release_run(CONTAINED, events=ABORTED).blast_radius()
    assert radius.version == "v2-bad"
    assert radius.rolled_back_at == T0 + 5.0
    assert (radius.bad_requests, radius.total_requests) == (15, 400)
    assert radius.bad_share == pytest.approx(0.0375)
    assert (radius.bad_requests_after_rollback, radius.requests_after_rollback) == (0, 900)
    assert radius.time_to_abort_s == pytest.approx(2.05)  # first bad request at +1.95 s
    assert radius.metrics()["rollback_allowance_s"] == 1.0


def test_contained_and_aborted_by_the_named_metric() -> None:
    run = release_run(CONTAINED, events=ABORTED)
    assert run.assert_contained().bad_share <= 0.05
    cause = run.assert_aborted_by("error-rate")
    assert (cause.metric, cause.phase) == ("error-rate", "Failed")


def test_an_abort_by_another_metric_fails_with_the_events() -> None:
    run = release_run(CONTAINED, events=ABORTED)
    with pytest.raises(AssertionError) as caught:
        run.assert_aborted_by("latency-p99")
    message = str(caught.value)
    assert "expected an abort by metric 'latency-p99' assessed Failed" in message
    assert "aborted metric 'error-rate' assessed Failed" in message
    assert "RolloutAborted" in message


def test_an_abort_by_analysis_errors_is_not_a_metric_verdict() -> None:
    errored = ABORT_MESSAGE.replace(
        "assessed Failed due to failed (1) > failureLimit (0)",
        "assessed Error due to consecutiveErrors (5) > consecutiveErrorLimit (4)",
    )
    run = release_run(CONTAINED, events=(ABORTED[0], _event(T0 + 4.0, "RolloutAborted", errored)))
    with pytest.raises(AssertionError, match="assessed Error"):
        run.assert_aborted_by("error-rate")
    assert run.assert_aborted_by("error-rate", phases=("Failed", "Error")).phase == "Error"


def test_a_manual_abort_names_no_metric() -> None:
    manual = (_event(T0 + 4.0, "RolloutAborted", "Rollout aborted update to revision 2"),)
    cause = release_run(CONTAINED, events=manual).abort_cause()
    assert cause is not None
    assert cause.metric is None
    assert cause.describe().startswith("not by a metric")


def test_no_abort_fails_containment_and_the_metric_check() -> None:
    run = release_run(CONTAINED, events=ABORTED[:1], view=_view("Healthy"))
    with pytest.raises(AssertionError, match="never aborted"):
        run.assert_aborted_by("error-rate")
    with pytest.raises(AssertionError, match="never rolled back"):
        run.assert_contained()


def test_a_share_over_the_first_step_fails_with_the_numbers() -> None:
    wide = traffic([{"v1": 100}] + [{"v1": 80, "v2-bad": 20}] * 3 + [{"v1": 100}] * 10)
    with pytest.raises(AssertionError, match=r"blast radius 15\.00% > 5%: 60 of 400 requests"):
        release_run(wide, events=ABORTED).assert_contained()


def test_too_little_traffic_after_the_rollback_is_inconclusive() -> None:
    short = traffic([{"v1": 100}] + [{"v1": 95, "v2-bad": 5}] * 3 + [{"v1": 100}] * 2)
    with pytest.raises(InconclusiveError, match=r"only 100 requests after the rollback"):
        release_run(short, events=ABORTED).assert_contained()


def test_the_new_version_is_inferred_when_the_variant_does_not_say() -> None:
    run = release_run(CONTAINED, events=ABORTED, version=None)
    assert run.new_version == "v2-bad"
    nothing_new = release_run(traffic([{"v1": 100}] * 3), version=None)
    with pytest.raises(InconclusiveError, match="served no request with a new version"):
        nothing_new.blast_radius()


def test_completion_needs_the_new_version_everywhere_afterwards() -> None:
    done = traffic([{"v1": 100}, {"v1": 50, "v2": 50}] + [{"v2": 100}] * 8)
    completed = (_event(RELEASE, "RolloutUpdated"), _event(T0 + 5.0, "RolloutCompleted"))
    run = release_run(done, events=completed, view=_view("Healthy"), version="v2")
    run.assert_completed()
    mixed = traffic([{"v1": 100}] * 2 + [{"v1": 50, "v2": 50}] * 8)
    with pytest.raises(AssertionError, match="every request should reach 'v2'"):
        release_run(mixed, events=completed, view=_view("Healthy"), version="v2").assert_completed()


def test_no_errors_reports_failures_by_version() -> None:
    with pytest.raises(AssertionError, match=r"failed \(expected 0\).*'v2-bad'"):
        release_run(CONTAINED, events=ABORTED).assert_no_errors()


def test_timeline_carries_measurements_with_thresholds() -> None:
    metric = MetricView(
        "error-rate",
        "Failed",
        "",
        "len(result) > 0 && !isNaN(result[0]) && result[0] <= 0.05",
        "len(result) > 0 && result[0] > 0.05",
        (MeasurementView("Failed", T0 + 3.0, T0 + 3.1, "[0.48]", ""),),
    )
    run_view = AnalysisRunView("svc-2-2", "Failed", "", {"error-rate": "Failed"}, (metric,))
    timeline = release_run(CONTAINED, events=ABORTED, runs=(run_view,)).timeline("traffic.csv")
    (measurement,) = timeline["analysis"]
    assert measurement["value"] == 0.48
    assert measurement["thresholds"] == [0.05]
    assert timeline["window"] == {"blast_radius": [RELEASE, T0 + 5.0], "rollback_at": T0 + 5.0}


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        (("result[0] <= 0.05",), [0.05]),
        (("len(result) > 0 && result[0] >= 0.95", "result[0] < 0.95"), [0.95]),
        (("all(result, # < 250)",), [250.0]),
        (("len(result) > 0",), []),
    ],
)
def test_thresholds_are_the_numbers_compared_against(
    conditions: tuple[str, ...], expected: list[float]
) -> None:
    assert thresholds(*conditions) == expected


def _view(phase: str) -> RolloutView:
    return RolloutView("svc", phase, "", 5, 0, "a", "b", phase == "Degraded")
