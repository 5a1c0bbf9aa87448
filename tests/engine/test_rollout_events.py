"""Events with Argo Rollouts' reasons and messages, and golden event sequences.

The golden sequences come from Argo Rollouts' own end-to-end expectations
(argoproj/argo-rollouts ``test/e2e/functional_test.go``, ``ExpectRolloutEvents``) and, where
that file has no list for the scenario, from the reconciliation order in ``rollout/canary.go``,
``rollout/trafficrouting.go``, ``rollout/analysis.go`` and ``rollout/sync.go``.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_rollout.engine import canary
from pytest_rollout.engine import events as ev
from pytest_rollout.engine.analysis.phases import AnalysisPhase
from pytest_rollout.engine.canary import Phase
from pytest_rollout.engine.events import EventType, Reason
from tests.engine.test_canary import (
    BAD_CANARY_STEPS,
    FAILED_MESSAGE,
    FakeCluster,
    failing,
    healthy,
    make_rollout,
)

# --- message formats -----------------------------------------------------------------------


def test_messages_have_argos_wording() -> None:
    at = 1.0
    assert ev.rollout_updated(2, at=at).message == "Rollout updated to revision 2"
    assert ev.new_replica_set_created("web-6d4f", 2, at=at).message == (
        "Created ReplicaSet web-6d4f (revision 2)"
    )
    assert ev.scaling_replica_set("web-6d4f", 2, 0, 1, at=at).message == (
        "Scaled up ReplicaSet web-6d4f (revision 2) from 0 to 1"
    )
    assert ev.scaling_replica_set("web-6d4f", 2, 4, 0, at=at).message == (
        "Scaled down ReplicaSet web-6d4f (revision 2) from 4 to 0"
    )
    assert ev.step_completed(1, 4, "setWeight: 5", at=at).message == (
        "Rollout step 1/4 completed (setWeight: 5)"
    )
    assert (
        ev.rollout_paused("CanaryPauseStep", at=at).message == "Rollout is paused (CanaryPauseStep)"
    )
    assert ev.rollout_resumed(at=at).message == "Rollout is resumed"
    assert ev.rollout_completed(2, "6d4f", "Completed all 4 canary steps", at=at).message == (
        "Rollout completed update to revision 2 (6d4f): Completed all 4 canary steps"
    )
    assert ev.rollout_not_completed(2, "6d4f", at=at).message == (
        "Rollout not completed, started update to revision 2 (6d4f)"
    )
    assert ev.skip_steps(at=at).message == "Rollback to stable ReplicaSets"
    assert ev.rollout_aborted_message(2) == "Rollout aborted update to revision 2"
    assert ev.rollout_aborted_message(2, "Step-based analysis phase error/failed: x") == (
        "Rollout aborted update to revision 2: Step-based analysis phase error/failed: x"
    )


@pytest.mark.parametrize(
    ("previous", "new", "message"),
    [
        (None, 0, "Traffic weight updated to 0"),
        (0, 5, "Traffic weight updated from 0 to 5"),
        (5, 0, "Traffic weight updated from 5 to 0"),
        # Only the ReplicaSets behind the weights changed: Argo lists no detail.
        (5, 5, "Traffic weight updated "),
    ],
)
def test_traffic_weight_message(previous: int | None, new: int, message: str) -> None:
    event = ev.traffic_weight_updated(previous, new, at=0.0)
    assert (event.reason, event.message) == ("TrafficWeightUpdated", message)


@pytest.mark.parametrize(
    ("phase", "event_type"),
    [
        ("Running", EventType.NORMAL),
        ("Successful", EventType.NORMAL),
        ("Inconclusive", EventType.NORMAL),
        ("Failed", EventType.WARNING),
        ("Error", EventType.WARNING),
    ],
)
def test_analysis_run_events_are_warnings_only_for_failed_and_error(
    phase: str, event_type: EventType
) -> None:
    event = ev.analysis_run_status("Step", "web-6d4f-2-2", phase, "Running", at=0.0)
    assert event.reason == f"AnalysisRun{phase}"
    assert event.type == event_type
    assert event.message == (
        f"Step Analysis Run 'web-6d4f-2-2' Status New: '{phase}' Previous: 'Running'"
    )


def test_first_analysis_status_has_no_previous() -> None:
    event = ev.analysis_run_status("Background", "web-6d4f-2", "Running", None, at=0.0)
    assert event.message == (
        "Background Analysis Run 'web-6d4f-2' Status New: 'Running' Previous: 'NoPreviousStatus'"
    )


def test_aborted_is_a_warning_and_the_rest_are_normal() -> None:
    assert ev.rollout_aborted("x", at=0.0).type == EventType.WARNING
    assert ev.rollout_updated(1, at=0.0).type == EventType.NORMAL
    assert str(ev.rollout_aborted("boom", at=0.0)) == "Warning RolloutAborted: boom"


@given(
    old=st.integers(min_value=0, max_value=1000),
    new=st.integers(min_value=0, max_value=1000),
)
def test_scaling_direction_follows_the_sizes(old: int, new: int) -> None:
    message = ev.scaling_replica_set("rs", 3, old, new, at=0.0).message
    direction = "up" if old < new else "down"
    assert message == f"Scaled {direction} ReplicaSet rs (revision 3) from {old} to {new}"


def test_reasons_are_argos_constants() -> None:
    assert {reason.value for reason in Reason} >= {
        "RolloutUpdated",
        "NewReplicaSetCreated",
        "ScalingReplicaSet",
        "RolloutStepCompleted",
        "RolloutPaused",
        "RolloutResumed",
        "TrafficWeightUpdated",
        "AnalysisRunRunning",
        "AnalysisRunSuccessful",
        "AnalysisRunFailed",
        "AnalysisRunError",
        "AnalysisRunInconclusive",
        "RolloutAborted",
        "RolloutCompleted",
        "RolloutNotCompleted",
        "SkipSteps",
    }


# --- golden sequences ----------------------------------------------------------------------

# argoproj/argo-rollouts test/e2e/functional_test.go, TestRolloutAbortRetryPromote:
# a basic canary (no traffic routing, 1 replica) with steps [setWeight: 50, pause: {duration:
# 3s}]; update, wait for Paused, abort, wait for Degraded, retry, wait for Paused, then Healthy.
# The list is quoted as written there, comments included.
ABORT_RETRY_PROMOTE_EXPECTED = [
    "RolloutAddedToInformer",  # Rollout added to informer cache
    "RolloutNotCompleted",  # Rollout not completed, started update to revision 0 (7fd9b5545c)
    "RolloutUpdated",  # Rollout updated to revision 1
    "NewReplicaSetCreated",  # Created ReplicaSet abort-retry-promote-698fbfb9dc (revision 1)
    "ScalingReplicaSet",  # Scaled up ReplicaSet abort-retry-promote-698fbfb9dc (revision 1) from 0 to 1  # noqa: E501
    "RolloutCompleted",  # Rollout completed update to revision 1 (698fbfb9dc): Initial deploy
    "RolloutNotCompleted",
    "RolloutUpdated",  # Rollout updated to revision 2
    "NewReplicaSetCreated",  # Created ReplicaSet abort-retry-promote-75dcb5ddd6 (revision 2)
    "ScalingReplicaSet",  # Scaled up ReplicaSet abort-retry-promote-75dcb5ddd6 (revision 2) from 0 to 1  # noqa: E501
    "RolloutStepCompleted",  # Rollout step 1/2 completed (setWeight: 50)
    "RolloutPaused",  # Rollout is paused (CanaryPauseStep)
    "ScalingReplicaSet",  # Scaled down ReplicaSet abort-retry-promote-75dcb5ddd6 (revision 2) from 1 to 0  # noqa: E501
    "RolloutAborted",  # Rollout aborted update to revision 2
    "ScalingReplicaSet",  # Scaled up ReplicaSet abort-retry-promote-75dcb5ddd6 (revision 2) from 0 to 1  # noqa: E501
    "RolloutStepCompleted",  # Rollout step 1/2 completed (setWeight: 50)
    "RolloutPaused",  # Rollout is paused (CanaryPauseStep)
    "RolloutStepCompleted",  # Rollout step 2/2 completed (pause: 3s)
    "RolloutResumed",  # Rollout is resumed
    "ScalingReplicaSet",  # Scaled down ReplicaSet abort-retry-promote-698fbfb9dc (revision 1) from 1 to 0  # noqa: E501
    "RolloutCompleted",  # Rollout completed update to revision 2 (75dcb5ddd6): Completed all 2 canary steps  # noqa: E501
]

# Emitted by the informer when the controller first sees the object, not by a reconciliation.
INFORMER_ONLY = {"RolloutAddedToInformer"}

ABORT_RETRY_STEPS = "- setWeight: 50\n- pause: {duration: 3s}\n"


def test_abort_retry_promote_matches_argos_e2e_sequence() -> None:
    options: dict[str, object] = {"replicas": 1, "traffic_routing": False}
    cluster = FakeCluster(make_rollout(ABORT_RETRY_STEPS, **options))
    cluster.run_until(healthy)
    cluster.rollout = make_rollout(ABORT_RETRY_STEPS, version="v2", **options)
    cluster.run_until(lambda c: c.status.phase == Phase.PAUSED)
    cluster.status = canary.abort(cluster.status)
    cluster.run_until(lambda c: c.status.phase == Phase.DEGRADED)
    cluster.status = canary.retry(cluster.status)
    cluster.run_until(lambda c: c.status.phase == Phase.PAUSED)
    cluster.run_until(healthy)
    cluster.settle()

    expected = [reason for reason in ABORT_RETRY_PROMOTE_EXPECTED if reason not in INFORMER_ONLY]
    assert cluster.reasons() == expected
    messages = [e.message for e in cluster.events]
    v1 = make_rollout(ABORT_RETRY_STEPS, **options).pod_template_hash
    v2 = cluster.rollout.pod_template_hash
    assert messages[4] == f"Rollout completed update to revision 1 ({v1}): Initial deploy"
    assert messages[11] == f"Scaled down ReplicaSet web-{v2} (revision 2) from 1 to 0"
    assert messages[12] == "Rollout aborted update to revision 2"
    assert messages[16] == "Rollout step 2/2 completed (pause: 3s)"
    assert messages[19] == (
        f"Rollout completed update to revision 2 ({v2}): Completed all 2 canary steps"
    )


# The failing-analysis canary of fixtures/manifests/bad-canary (traffic routing through the
# Gateway API plugin, setWeight 5, pause 10s, analysis, setWeight 50, pause 10s).
# functional_test.go has no ExpectRolloutEvents list for a failing analysis; this sequence
# follows the reconciliation order (rolloutCanary: traffic routing, then analysis runs, then
# ReplicaSets, then status) and keeps the shape of the e2e list above: the same events for the
# first deploy and the update up to the pause, then the AnalysisRun status events
# (emitAnalysisRunStatusChanges), the abort, weight 0 on the next pass and the canary scaled
# down after abortScaleDownDelaySeconds. The Services' switches (switchServiceSelector) come
# where ensureSVCTargets allows them: a Service is adopted once its ReplicaSet is fully
# available, moved once the target has an available pod. No weight is recorded before the
# stable ReplicaSet has the pods for its share (checkReplicasAvailable).
BAD_CANARY_EXPECTED = [
    # first deploy
    ("RolloutNotCompleted", "Normal"),
    ("RolloutUpdated", "Normal"),
    ("NewReplicaSetCreated", "Normal"),
    ("ScalingReplicaSet", "Normal"),  # up 0 -> 4
    ("RolloutCompleted", "Normal"),  # Initial deploy
    ("SwitchService", "Normal"),  # stable Service adopted, '' -> stable hash
    ("SwitchService", "Normal"),  # canary Service adopted, '' -> stable hash
    ("TrafficWeightUpdated", "Normal"),  # weight 0, once the stable's pods are available
    # the bad release
    ("RolloutNotCompleted", "Normal"),
    ("RolloutUpdated", "Normal"),
    ("NewReplicaSetCreated", "Normal"),
    ("TrafficWeightUpdated", "Normal"),  # canary hash recorded, weight still 0
    ("ScalingReplicaSet", "Normal"),  # canary up 0 -> 1 (ceil(4 * 5 / 100))
    ("SwitchService", "Normal"),  # canary Service -> canary hash, once its pod is available
    ("TrafficWeightUpdated", "Normal"),  # from 0 to 5
    ("RolloutStepCompleted", "Normal"),  # 1/5 (setWeight: 5)
    ("RolloutPaused", "Normal"),  # CanaryPauseStep
    ("RolloutStepCompleted", "Normal"),  # 2/5 (pause: 10s)
    ("RolloutResumed", "Normal"),
    ("AnalysisRunRunning", "Normal"),
    ("AnalysisRunFailed", "Warning"),
    ("RolloutAborted", "Warning"),
    ("SwitchService", "Normal"),  # canary Service back to the stable hash
    ("TrafficWeightUpdated", "Normal"),  # from 5 to 0
    ("ScalingReplicaSet", "Normal"),  # canary down 1 -> 0 after abortScaleDownDelaySeconds
]


def test_failing_analysis_event_sequence() -> None:
    cluster = FakeCluster(
        make_rollout(BAD_CANARY_STEPS, extra_canary="abortScaleDownDelaySeconds: 10\n")
    )
    cluster.plan = failing
    cluster.run_until(healthy)
    cluster.settle()
    cluster.rollout = make_rollout(
        BAD_CANARY_STEPS, version="v2", extra_canary="abortScaleDownDelaySeconds: 10\n"
    )
    cluster.settle()

    assert [(e.reason, str(e.type)) for e in cluster.events] == BAD_CANARY_EXPECTED
    by_reason = {e.reason: e for e in cluster.events}
    aborted = by_reason["RolloutAborted"]
    failed = by_reason["AnalysisRunFailed"]
    scaled_down = cluster.events[-1]
    run_name = f"web-{cluster.rollout.pod_template_hash}-2-2"
    assert failed.message == (
        f"Step Analysis Run '{run_name}' Status New: 'Failed' Previous: 'Running'"
    )
    assert aborted.message == (
        "Rollout aborted update to revision 2: Step-based analysis phase error/failed: "
        + FAILED_MESSAGE
    )
    assert scaled_down.at - aborted.at == pytest.approx(10.0)
    assert cluster.status.phase == Phase.DEGRADED
    assert cluster.status.message == f"RolloutAborted: {aborted.message}"

    # Leaving out what only traffic routing and analysis add, the sequence up to the pause is
    # the e2e list's.
    e2e = [r for r in ABORT_RETRY_PROMOTE_EXPECTED if r not in INFORMER_ONLY]
    plain = [
        reason
        for reason, _ in BAD_CANARY_EXPECTED
        if reason not in ("TrafficWeightUpdated", "SwitchService")
        and not reason.startswith("AnalysisRun")
    ]
    assert plain[:11] == e2e[:11]


def test_error_verdict_gives_analysis_run_error_event() -> None:
    cluster = FakeCluster(make_rollout(BAD_CANARY_STEPS))
    cluster.run_until(healthy)
    cluster.plan = lambda request: [
        (0.0, AnalysisPhase.RUNNING, ""),
        (2.0, AnalysisPhase.ERROR, "boom"),
    ]
    cluster.rollout = make_rollout(BAD_CANARY_STEPS, version="v2")
    cluster.run_until(lambda c: c.status.abort)
    errors = [e for e in cluster.events if e.reason == "AnalysisRunError"]
    assert [e.type for e in errors] == [EventType.WARNING]
