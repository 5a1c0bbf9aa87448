"""Reading Rollout, AnalysisRun, Event, Deployment and Pod objects as the API returns them."""

from __future__ import annotations

import copy
import datetime
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from pytest_rollout.backends.base import EventView, RolloutView
from pytest_rollout.backends.kube import status
from tests.kube.schemas import KUBERNETES_VERSIONS, argo_crds_available, validate

DATA = Path(__file__).parent / "data"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DATA / name).read_text())
    return data


def _objects() -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    for path in sorted(DATA.glob("*.yaml")):
        data = load(path.name)
        items = data["items"] if data["kind"].endswith("List") else [data]
        found.extend((f"{path.name}[{i}]", item) for i, item in enumerate(items))
    return found


@pytest.mark.parametrize(("where", "obj"), _objects(), ids=[w for w, _ in _objects()])
def test_the_test_data_has_the_api_shape(where: str, obj: dict[str, Any]) -> None:
    if obj["apiVersion"].startswith("argoproj.io/") and not argo_crds_available():
        pytest.skip("Argo Rollouts CRDs not at hand")
    assert not validate(obj, KUBERNETES_VERSIONS[-1]), where


# --- Rollout ------------------------------------------------------------------------------------


def test_a_canary_paused_at_its_first_step() -> None:
    view = status.rollout_view(load("rollout-paused.yaml"))
    assert view == RolloutView(
        name="reference-service",
        phase="Paused",
        message="CanaryPauseStep",
        current_step_index=1,
        canary_weight=5,
        stable_hash="6c9b7f8d44",
        canary_hash="5f4d8c7b9d",
        aborted=False,
    )
    progress = status.rollout_progress(load("rollout-paused.yaml"))
    assert not progress.done
    assert (
        progress.summary
        == "phase Paused (CanaryPauseStep), 1/4 updated, 5 available, 5 total, step 1"
    )


def test_an_aborted_canary() -> None:
    view = status.rollout_view(load("rollout-aborted.yaml"))
    assert view.aborted
    assert view.phase == "Degraded"
    assert view.canary_weight == 0
    assert view.current_step_index == 0
    assert view.message.startswith("RolloutAborted: Rollout aborted update to revision 2: ")
    assert (
        'Metric "error-rate" assessed Failed due to failed (1) > failureLimit (0)' in view.message
    )
    assert view.canary_hash == "5f4d8c7b9d"
    assert not status.rollout_progress(load("rollout-aborted.yaml")).done


def test_a_completed_rollout() -> None:
    obj = load("rollout-healthy.yaml")
    view = status.rollout_view(obj)
    assert (view.phase, view.canary_hash, view.stable_hash) == ("Healthy", None, "7b6c5d4e3f")
    assert status.rollout_progress(obj).done


def test_a_blue_green_rollout_names_its_service_selectors() -> None:
    obj = load("rollout-paused.yaml")
    obj["status"]["blueGreen"] = {"activeSelector": "6c9b7f8d44", "previewSelector": "5f4d8c7b9d"}
    view = status.rollout_view(obj)
    assert (view.active_hash, view.preview_hash) == ("6c9b7f8d44", "5f4d8c7b9d")
    assert status.rollout_view(load("rollout-paused.yaml")).active_hash is None


def test_a_rollout_whose_new_spec_is_not_observed_yet_is_not_done() -> None:
    obj = load("rollout-healthy.yaml")
    obj["metadata"]["generation"] = 3
    assert not status.rollout_observed(obj)
    assert not status.rollout_progress(obj).done


def test_a_rollout_the_controller_never_saw() -> None:
    obj = load("rollout-healthy.yaml")
    del obj["status"]
    view = status.rollout_view(obj)
    assert (view.phase, view.current_step_index, view.stable_hash, view.aborted) == (
        "",
        None,
        None,
        False,
    )
    assert not status.rollout_progress(obj).done


# --- promote / abort / retry, as kubectl argo rollouts does them ----------------------------------


def test_promote_clears_the_pause_of_a_paused_step() -> None:
    assert status.promote_patches(load("rollout-paused.yaml"), full=False) == (
        None,
        {"status": {"pauseConditions": None}},
    )


def test_promote_skips_a_running_step_without_pause_conditions() -> None:
    obj = load("rollout-paused.yaml")
    del obj["status"]["pauseConditions"]
    obj["status"]["currentStepIndex"] = 2
    assert status.promote_patches(obj, full=False) == (
        None,
        {"status": {"pauseConditions": None, "currentStepIndex": 3}},
    )


def test_promote_unpauses_a_paused_spec_and_never_goes_past_the_last_step() -> None:
    obj = load("rollout-paused.yaml")
    obj["spec"]["paused"] = True
    del obj["status"]["pauseConditions"]
    obj["status"]["currentStepIndex"] = 5
    spec_patch, status_patch = status.promote_patches(obj, full=False)
    assert spec_patch == {"spec": {"paused": False}}
    assert status_patch == {"status": {"pauseConditions": None, "currentStepIndex": 5}}


def test_full_promotion_only_while_a_new_revision_is_in_progress() -> None:
    assert status.promote_patches(load("rollout-paused.yaml"), full=True) == (
        None,
        {"status": {"promoteFull": True}},
    )
    assert status.promote_patches(load("rollout-healthy.yaml"), full=True) == (None, None)


# The patch bodies of Argo Rollouts v1.9.1, pkg/kubectl-argo-rollouts/cmd/promote/promote.go.
UNPAUSE = '{"spec":{"paused":false}}'
PROMOTE_FULL = '{"status":{"promoteFull":true}}'
CLEAR_PAUSE_CONDITIONS = '{"status":{"pauseConditions":null}}'
CLEAR_PAUSE_AND_CONTROLLER_PAUSE = (
    '{"status":{"pauseConditions":null, "controllerPause":false, "currentStepIndex":%d}}'
)
CLEAR_PAUSE_WITH_STEP = '{"status":{"pauseConditions":null, "currentStepIndex":%d}}'


def _body(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _inconclusive(step: int, *, controller_pause: bool = True) -> dict[str, Any]:
    """Paused by an Inconclusive analysis at step ``step`` (the fixture's analysis step is 2)."""
    obj = load("rollout-paused.yaml")
    obj["status"].update(
        currentStepIndex=step,
        controllerPause=controller_pause,
        pauseConditions=[{"reason": "InconclusiveAnalysisRun", "startTime": "2026-05-04T10:02Z"}],
    )
    obj["status"]["canary"]["currentStepAnalysisRunStatus"] = {
        "name": "reference-service-5f4d8c7b9d-2-2",
        "status": "Inconclusive",
    }
    return obj


@pytest.mark.parametrize(
    ("paused", "in_progress", "expected"),
    [
        (True, True, (UNPAUSE, PROMOTE_FULL)),
        (True, False, (UNPAUSE, None)),
        (False, True, (None, PROMOTE_FULL)),
        (False, False, (None, None)),
    ],
)
def test_full_promotion_patches_match_the_kubectl_plugin(
    paused: bool, in_progress: bool, expected: tuple[str | None, str | None]
) -> None:
    obj = load("rollout-paused.yaml")
    obj["spec"]["paused"] = paused
    if not in_progress:
        obj["status"]["currentPodHash"] = obj["status"]["stableRS"]
    assert status.promote_patches(obj, full=True) == tuple(_body(t) for t in expected)


@pytest.mark.parametrize(("step", "next_step"), [(2, 3), (5, 5)])
def test_promote_after_an_inconclusive_analysis_moves_on_and_clears_the_controller_pause(
    step: int, next_step: int
) -> None:
    assert status.promote_patches(_inconclusive(step), full=False) == (
        None,
        _body(CLEAR_PAUSE_AND_CONTROLLER_PAUSE % next_step),
    )
    obj = _inconclusive(step)
    obj["spec"]["paused"] = True
    assert status.promote_patches(obj, full=False) == (
        _body(UNPAUSE),
        _body(CLEAR_PAUSE_AND_CONTROLLER_PAUSE % next_step),
    )


def test_an_inconclusive_run_without_the_controller_pause_only_clears_the_conditions() -> None:
    obj = _inconclusive(2, controller_pause=False)
    assert status.promote_patches(obj, full=False) == (None, _body(CLEAR_PAUSE_CONDITIONS))


def test_promote_patch_bodies_without_pause_conditions() -> None:
    obj = load("rollout-paused.yaml")
    del obj["status"]["pauseConditions"]
    del obj["status"]["currentStepIndex"]
    # No index yet counts as step 0.
    assert status.promote_patches(obj, full=False) == (None, _body(CLEAR_PAUSE_WITH_STEP % 1))
    obj["spec"]["strategy"]["canary"] = {}
    assert status.promote_patches(obj, full=False) == (None, None), "a canary without steps"
    obj["spec"]["strategy"] = {"blueGreen": {"activeService": "a"}}
    assert status.promote_patches(obj, full=False) == (None, None)
    obj["status"]["pauseConditions"] = [{"reason": "BlueGreenPause"}]
    assert status.promote_patches(obj, full=False) == (None, _body(CLEAR_PAUSE_CONDITIONS))


def test_abort_and_retry_patch_the_status() -> None:
    assert status.ABORT_PATCH == {"status": {"abort": True}}
    assert status.RETRY_PATCH == {"status": {"abort": False}}


# --- AnalysisRun --------------------------------------------------------------------------------


def test_a_failed_analysis_run() -> None:
    obj = load("analysisrun-failed.yaml")
    view = status.analysis_run_view(obj)
    assert view.name == "reference-service-5f4d8c7b9d-2-2"
    assert view.phase == "Failed"
    assert (
        view.message == 'Metric "error-rate" assessed Failed due to failed (1) > failureLimit (0)'
    )
    assert dict(view.metric_phases) == {"error-rate": "Failed"}
    assert status.owned_by(obj, "Rollout", "reference-service")
    assert not status.owned_by(obj, "Rollout", "other")


def test_the_business_gate_run_shows_each_metric() -> None:
    view = status.analysis_run_view(load("analysisrun-business-gate.yaml"))
    assert dict(view.metric_phases) == {"error-rate": "Successful", "checkout-success": "Failed"}
    assert view.phase == "Failed"


def test_a_run_without_status_is_pending() -> None:
    obj = load("analysisrun-failed.yaml")
    del obj["status"]
    assert status.analysis_run_view(obj).phase == "Pending"


# --- Events -------------------------------------------------------------------------------------


def _epoch(text: str) -> float:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_events_are_ordered_by_time_then_by_resource_version() -> None:
    events = status.sorted_events(load("events.yaml")["items"])
    assert [e.reason for e in events] == [
        "RolloutUpdated",
        "Unhealthy",
        "RolloutStepCompleted",
        "RolloutPaused",
        "RolloutStepCompleted",
        "AnalysisRunRunning",
        "AnalysisRunFailed",
        "RolloutAborted",
    ]
    assert events[0] == EventView(
        timestamp=_epoch("2026-05-04T10:01:00Z"),
        type="Normal",
        reason="RolloutUpdated",
        message="Rollout updated to revision 2",
        kind="Rollout",
        name="reference-service",
    )
    probe = events[1]
    assert (probe.kind, probe.type, probe.timestamp) == (
        "Pod",
        "Warning",
        _epoch("2026-05-04T10:01:01.25Z"),
    )
    assert events[-1].message.startswith("Rollout aborted update to revision 2: Step-based")


def test_a_core_v1_event_reads_the_same() -> None:
    event = status.event_view(load("event-core-v1.yaml"))
    assert (event.reason, event.kind, event.name) == (
        "ScalingReplicaSet",
        "Rollout",
        "reference-service",
    )
    assert (
        event.message
        == "Scaled down ReplicaSet reference-service-5f4d8c7b9d (revision 2) from 1 to 0"
    )
    assert event.timestamp == _epoch("2026-05-04T10:01:41Z")


def test_event_time_in_microseconds_wins_over_the_whole_second_timestamps() -> None:
    event = load("events.yaml")["items"][-1]
    assert event["eventTime"] is None
    whole = status.event_view(event).timestamp
    assert whole == int(whole), "Argo's events carry whole seconds only"
    event["eventTime"] = event["deprecatedFirstTimestamp"].replace("Z", ".654321Z")
    assert status.event_view(event).timestamp == pytest.approx(whole + 0.654321, abs=1e-6)


def test_event_lines_are_relative_to_the_namespace_start() -> None:
    events = status.sorted_events(load("events.yaml")["items"])
    origin = _epoch("2026-05-04T10:00:58Z")
    assert status.event_line(events[-1], origin).startswith(
        "+33.0s Warning RolloutAborted rollout/reference-service: Rollout aborted"
    )


@given(
    st.datetimes(
        min_value=datetime.datetime(2000, 1, 1),
        max_value=datetime.datetime(2100, 1, 1),
        timezones=st.just(datetime.UTC),
    )
)
def test_api_times_parse_to_epoch(moment: datetime.datetime) -> None:
    seconds = moment.replace(microsecond=0)
    assert status.parse_time(seconds.strftime("%Y-%m-%dT%H:%M:%SZ")) == seconds.timestamp()
    micro = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    parsed = status.parse_time(micro)
    assert parsed is not None
    assert abs(parsed - moment.timestamp()) < 1e-5


@pytest.mark.parametrize("value", [None, "", "yesterday", 12, "2026-13-01T00:00:00Z"])
def test_unreadable_times_are_none(value: object) -> None:
    assert status.parse_time(value) is None


# --- Deployment and Pod -------------------------------------------------------------------------


def test_a_deployment_half_way() -> None:
    progress = status.deployment_progress(load("deployment-rolling.yaml"))
    assert not progress.done
    assert progress.failed is None
    assert progress.summary == "2/3 updated, 3 available, 4 total"


def test_a_deployment_past_its_deadline_has_failed() -> None:
    progress = status.deployment_progress(load("deployment-deadline.yaml"))
    assert progress.failed == 'ReplicaSet "reference-service-7c8d9e0f1a" has timed out progressing.'


def test_a_deployment_done() -> None:
    obj = copy.deepcopy(load("deployment-rolling.yaml"))
    obj["status"].update(replicas=3, updatedReplicas=3, availableReplicas=3)
    assert status.deployment_progress(obj).done
    obj["metadata"]["generation"] = 3
    assert not status.deployment_progress(obj).done


def test_pod_line_and_log_containers() -> None:
    pod = load("pod-restarted.yaml")
    assert status.pod_line(pod) == (
        "reference-service-5f4d8c7b9d-x7k2p phase=Running ready=True restarts=1 "
        "ip=10.244.0.12 hash=5f4d8c7b9d"
    )
    assert status.pod_containers(pod) == ["migrate", "app"]
