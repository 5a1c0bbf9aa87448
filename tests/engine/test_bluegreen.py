"""The blueGreen state machine: preview, pause, the active switch, analysis, abort and retry.

Driven by the simulated cluster of the canary tests (pods Ready ``pod_boot`` seconds after a
scale-up, AnalysisRuns on a script, a simulated clock). The golden event sequences come from
Argo Rollouts' end-to-end expectations (argoproj/argo-rollouts v1.9.1
``test/e2e/functional_test.go`` TestBlueGreenUpdate, ``test/e2e/bluegreen_test.go``,
``test/e2e/analysis_test.go``) and, where those have no list, from the reconciliation order of
``rollout/bluegreen.go`` (preview Service, ReplicaSets, pause, active Service, analysis, status).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_rollout.engine import bluegreen, strategies
from pytest_rollout.engine.analysis.phases import AnalysisPhase
from pytest_rollout.engine.rollout_model import Rollout, parse_rollout
from pytest_rollout.engine.status import (
    AnalysisRunRequest,
    Observations,
    Phase,
    RolloutStatus,
    RunKind,
    abort,
    retry,
)
from pytest_rollout.errors import RolloutError
from pytest_rollout.manifests import parse_manifests
from tests.engine.test_canary import (
    FAILED_MESSAGE,
    FakeCluster,
    Plan,
    failing,
    healthy,
    rollout_head,
)

MANUAL = "autoPromotionEnabled: false\n"
PRE = "prePromotionAnalysis:\n  templates:\n    - templateName: smoke-check\n"
POST = "postPromotionAnalysis:\n  templates:\n    - templateName: error-rate\n"


def bg_yaml(
    version: str = "v1", *, extra: str = "", replicas: int = 3, preview: bool = True
) -> str:
    preview_line = "previewService: web-preview\n" if preview else ""
    strategy = f"activeService: web-active\n{preview_line}{extra}"
    head = rollout_head(version=version, replicas=replicas)
    return head + "    blueGreen:\n" + textwrap.indent(strategy, "      ")


def make_bg(version: str = "v1", **options: object) -> Rollout:
    text = bg_yaml(version, **options)  # type: ignore[arg-type]
    return parse_rollout(parse_manifests(text, Path("bg.yaml"))[0])


def deployed(**options: object) -> FakeCluster:
    cluster = FakeCluster(make_bg(**options))  # type: ignore[arg-type]
    cluster.settle()
    assert cluster.status.phase == Phase.HEALTHY, cluster.status
    cluster.events.clear()
    return cluster


def paused(cluster: FakeCluster) -> bool:
    return cluster.status.phase == Phase.PAUSED


def degraded(cluster: FakeCluster) -> bool:
    return cluster.status.phase == Phase.DEGRADED


def selected(cluster: FakeCluster) -> tuple[str, str, str]:
    """(stable, active, preview) as versions: which release each one is."""
    names = {cluster.rollout.pod_template_hash: "new"}
    status = cluster.status
    return (
        names.get(status.stable_rs, "old"),
        names.get(status.active_selector, "old"),
        names.get(status.preview_selector, "old"),
    )


def reasons_and_messages(cluster: FakeCluster) -> list[tuple[str, str]]:
    return [(str(e.reason), e.message) for e in cluster.events]


# --- golden sequences ----------------------------------------------------------------------

# test/e2e/functional_test.go TestBlueGreenUpdate (no preview Service, auto-promotion), as
# written there without the informer's RolloutAddedToInformer; the previous ReplicaSet's
# scale-down after scaleDownDelaySeconds follows (the e2e test stops before it).
BLUE_GREEN_UPDATE_EXPECTED = [
    "RolloutUpdated",  # Rollout updated to revision 1
    "NewReplicaSetCreated",  # Created ReplicaSet bluegreen-7dcd8f8869 (revision 1)
    "ScalingReplicaSet",  # Scaled up ReplicaSet bluegreen-7dcd8f8869 (revision 1) from 0 to 3
    "RolloutCompleted",  # Rollout completed update to revision 1 (7dcd8f8869): Initial deploy
    "SwitchService",  # Switched selector for service 'bluegreen' from '' to '7dcd8f8869'
    "RolloutUpdated",  # Rollout updated to revision 2
    "NewReplicaSetCreated",  # Created ReplicaSet bluegreen-5498785cd6 (revision 2)
    "RolloutNotCompleted",  # Rollout not completed, started update to revision 2
    "ScalingReplicaSet",  # Scaled up ReplicaSet bluegreen-5498785cd6 (revision 2) from 0 to 3
    "SwitchService",  # Switched selector for service 'bluegreen' from '7dcd8f8869' to ...
    "RolloutCompleted",  # Rollout completed update to revision 2: Completed blue-green update
]


def test_update_matches_argos_e2e_sequence() -> None:
    cluster = FakeCluster(make_bg(preview=False))
    cluster.settle()
    v1 = cluster.rollout.pod_template_hash
    cluster.rollout = make_bg("v2", preview=False)
    v2 = cluster.rollout.pod_template_hash
    cluster.run_until(healthy)
    assert cluster.reasons() == BLUE_GREEN_UPDATE_EXPECTED
    messages = [e.message for e in cluster.events]
    assert messages[3] == f"Rollout completed update to revision 1 ({v1}): Initial deploy"
    assert messages[4] == f"Switched selector for service 'web-active' from '' to '{v1}'"
    assert messages[7] == f"Rollout not completed, started update to revision 2 ({v2})"
    assert messages[9] == f"Switched selector for service 'web-active' from '{v1}' to '{v2}'"
    assert messages[10] == (
        f"Rollout completed update to revision 2 ({v2}): Completed blue-green update"
    )
    # At Healthy the previous ReplicaSet is still up: desired 3, current 6 (e2e 3/6/3/3/3).
    status = cluster.status
    assert (status.replicas, status.updated_replicas, status.available_replicas) == (6, 3, 3)
    promoted_at = cluster.events[-1].at
    cluster.settle()
    assert reasons_and_messages(cluster)[-1] == (
        "ScalingReplicaSet",
        f"Scaled down ReplicaSet web-{v1} (revision 1) from 3 to 0",
    )
    assert cluster.events[-1].at - promoted_at == pytest.approx(30, abs=0.01)


# With a preview Service and autoPromotionEnabled: false (derived from rolloutBlueGreen's order):
# the preview Service follows the new ReplicaSet in the pass that creates it, the pause comes
# once it is available, and a promote clears the pause itself, so no RolloutResumed.
MANUAL_PROMOTION_EXPECTED = [
    "RolloutUpdated",
    "NewReplicaSetCreated",
    "SwitchService",  # preview -> new, before any pod exists
    "RolloutNotCompleted",
    "ScalingReplicaSet",  # new 0 -> 3, beside the 3 active pods
    "RolloutPaused",  # BlueGreenPause
    "SwitchService",  # active -> new, after promote
    "RolloutCompleted",  # Completed blue-green update
    "ScalingReplicaSet",  # previous 3 -> 0, scaleDownDelaySeconds later
]


def test_manual_promotion_pauses_with_both_stacks_up_until_promote() -> None:
    cluster = deployed(extra=MANUAL)
    cluster.rollout = make_bg("v2", extra=MANUAL)
    cluster.run_until(paused)
    status = cluster.status
    assert status.message == "BlueGreenPause"
    assert selected(cluster) == ("old", "old", "new")
    # Both stacks at full size: twice the pods during the cutover.
    assert [rs.replicas for rs in status.replica_sets] == [3, 3]
    cluster.settle(limit=3_600)
    assert paused(cluster)
    cluster.status = bluegreen.promote(cluster.status)
    cluster.run_until(healthy)
    assert selected(cluster) == ("new", "new", "new")
    cluster.settle()
    assert cluster.reasons() == MANUAL_PROMOTION_EXPECTED
    assert cluster.events[5].message == "Rollout is paused (BlueGreenPause)"


def test_auto_promotion_seconds_resumes_by_itself() -> None:
    extra = "autoPromotionSeconds: 10\n"
    cluster = deployed(extra=extra)
    cluster.rollout = make_bg("v2", extra=extra)
    cluster.run_until(paused)
    started = cluster.status.pause_conditions[0].start_time
    cluster.run_until(healthy)
    assert 10 < cluster.now - started < 10.1
    # The switch, the promotion, then the resume (sendStateChangeEvents at the end of a pass).
    tail = [r for r in cluster.reasons() if r != "ScalingReplicaSet"][-3:]
    assert tail == ["SwitchService", "RolloutCompleted", "RolloutResumed"]


def test_initial_deploy_points_the_active_service_once_saturated() -> None:
    cluster = FakeCluster(make_bg())
    cluster.reconcile()
    # Stable at once ("Initial deploy"), preview switched before any pod; active not yet.
    assert cluster.status.stable_rs == cluster.rollout.pod_template_hash
    assert cluster.status.preview_selector == cluster.rollout.pod_template_hash
    assert cluster.status.active_selector == ""
    assert cluster.status.message == "more replicas need to be updated"
    cluster.settle()
    assert cluster.status.active_selector == cluster.rollout.pod_template_hash
    assert cluster.status.available is True


# --- analysis ------------------------------------------------------------------------------


def test_pre_promotion_analysis_runs_on_the_preview_before_the_pause() -> None:
    extra = MANUAL + PRE
    cluster = deployed(extra=extra)
    cluster.rollout = make_bg("v2", extra=extra)
    new_hash = cluster.rollout.pod_template_hash
    cluster.run_until(lambda c: bool(c.started))
    (request,) = cluster.started
    assert (request.name, request.kind) == (f"web-{new_hash}-2-pre", RunKind.PRE_PROMOTION)
    # Started once the new ReplicaSet is saturated, and no pause until it succeeded.
    assert cluster.observations().pods[new_hash].available == 3
    assert not cluster.status.pause_conditions
    cluster.run_until(paused)
    runs = [m for r, m in reasons_and_messages(cluster) if r.startswith("AnalysisRun")]
    assert runs[-1] == (
        f"PrePromotion Analysis Run 'web-{new_hash}-2-pre' Status New: 'Successful' "
        "Previous: 'Running'"
    )


def test_auto_promotion_switches_once_pre_promotion_analysis_succeeds() -> None:
    cluster = deployed(extra=PRE)
    cluster.rollout = make_bg("v2", extra=PRE)
    cluster.run_until(healthy)
    switch_at = next(
        e.at for e in cluster.events if e.message.startswith("Switched selector for service 'web-a")
    )
    succeeded_at = next(e.at for e in cluster.events if e.reason == "AnalysisRunSuccessful")
    assert switch_at == succeeded_at
    assert "RolloutPaused" not in cluster.reasons()


def test_failed_pre_promotion_analysis_aborts_and_keeps_the_active_stack() -> None:
    cluster = deployed(extra=PRE)
    cluster.plan = failing
    cluster.rollout = make_bg("v2", extra=PRE)
    new_hash = cluster.rollout.pod_template_hash
    cluster.run_until(degraded)
    aborted_at = cluster.now
    assert cluster.status.message == (
        "RolloutAborted: Rollout aborted update to revision 2: Blue/green pre-promotion "
        f"analysis phase error/failed: {FAILED_MESSAGE}"
    )
    # e2e TestBlueGreenPrePromotionFail: stable = active = rev1, preview = rev2.
    assert selected(cluster) == ("old", "old", "new")
    assert "SwitchService" not in cluster.reasons()[-3:]
    cluster.settle()
    assert cluster.replicas(new_hash) == 0
    scaled = cluster.events[-1]
    assert scaled.message == f"Scaled down ReplicaSet web-{new_hash} (revision 2) from 3 to 0"
    assert scaled.at - aborted_at == pytest.approx(30, abs=0.01)


def test_post_promotion_analysis_decides_stability_after_the_switch() -> None:
    extra = MANUAL + POST
    cluster = deployed(extra=extra)
    old_hash = cluster.status.stable_rs
    cluster.rollout = make_bg("v2", extra=extra)
    cluster.run_until(paused)
    cluster.status = bluegreen.promote(cluster.status)
    cluster.run_until(lambda c: c.status.active_selector == c.rollout.pod_template_hash)
    # Switched, not yet stable: the previous stack stays at full size meanwhile.
    assert selected(cluster) == ("old", "new", "new")
    assert cluster.status.message == "waiting for analysis to complete"
    assert cluster.started == []
    cluster.reconcile()  # created on the pass after the switch
    assert [r.kind for r in cluster.started] == [RunKind.POST_PROMOTION]
    assert cluster.replicas(old_hash) == 3
    cluster.run_until(healthy)
    assert selected(cluster) == ("new", "new", "new")


# Aborted by post-promotion analysis (derived): switch to the new stack, the run fails, the
# abort, the active Service back to stable on the next pass, the new stack down after
# abortScaleDownDelaySeconds.
POST_FAIL_TAIL = [
    "SwitchService",
    "AnalysisRunRunning",
    "AnalysisRunFailed",
    "RolloutAborted",
    "SwitchService",
    "ScalingReplicaSet",
]


def test_failed_post_promotion_analysis_switches_back_to_stable() -> None:
    extra = MANUAL + POST + "abortScaleDownDelaySeconds: 5\n"
    cluster = deployed(extra=extra)
    cluster.plan = failing
    cluster.rollout = make_bg("v2", extra=extra)
    cluster.run_until(paused)
    cluster.events.clear()
    cluster.status = bluegreen.promote(cluster.status)
    cluster.run_until(degraded)
    cluster.settle()
    assert cluster.reasons() == POST_FAIL_TAIL
    # e2e TestBlueGreenPostPromotionFail: active back on rev1, preview stays on rev2.
    assert selected(cluster) == ("old", "old", "new")
    aborted = next(e for e in cluster.events if e.reason == "RolloutAborted")
    assert aborted.message.endswith(
        f"Blue/green post-promotion analysis phase error/failed: {FAILED_MESSAGE}"
    )
    assert cluster.events[-1].at - aborted.at == pytest.approx(5, abs=0.01)


def test_inconclusive_pre_promotion_pauses_and_promote_runs_it_again() -> None:
    cluster = deployed(extra=PRE)

    def plan(request: AnalysisRunRequest) -> Plan:
        verdict = (
            AnalysisPhase.INCONCLUSIVE if len(cluster.started) == 1 else AnalysisPhase.SUCCESSFUL
        )
        return [(0.0, AnalysisPhase.RUNNING, ""), (3.0, verdict, "")]

    cluster.plan = plan
    cluster.rollout = make_bg("v2", extra=PRE)
    cluster.run_until(paused)
    assert cluster.status.message == "InconclusiveAnalysisRun"
    cluster.settle(limit=600)
    assert paused(cluster)
    cluster.status = bluegreen.promote(cluster.status)
    cluster.run_until(healthy)
    new_hash = cluster.rollout.pod_template_hash
    assert [r.name for r in cluster.started] == [f"web-{new_hash}-2-pre", f"web-{new_hash}-2-pre.1"]


# --- abort, retry, promote --full ------------------------------------------------------------


def test_abort_while_paused_keeps_stable_active_and_scales_the_preview_down_later() -> None:
    cluster = deployed(extra=MANUAL)
    cluster.rollout = make_bg("v2", extra=MANUAL)
    new_hash = cluster.rollout.pod_template_hash
    cluster.run_until(paused)
    cluster.events.clear()
    cluster.status = abort(cluster.status)
    cluster.run_until(degraded)
    assert cluster.status.message == "RolloutAborted: Rollout aborted update to revision 2"
    assert reasons_and_messages(cluster) == [
        ("RolloutAborted", "Rollout aborted update to revision 2")
    ]
    assert selected(cluster) == ("old", "old", "new")
    assert cluster.replicas(new_hash) == 3
    cluster.settle()
    assert cluster.reasons() == ["RolloutAborted", "ScalingReplicaSet"]
    assert cluster.replicas(new_hash) == 0
    assert degraded(cluster)


def test_abort_scale_down_delay_zero_leaves_the_preview_up() -> None:
    extra = MANUAL + "abortScaleDownDelaySeconds: 0\n"
    cluster = deployed(extra=extra)
    cluster.rollout = make_bg("v2", extra=extra)
    cluster.run_until(paused)
    cluster.status = abort(cluster.status)
    cluster.settle(limit=3_600)
    assert cluster.replicas(cluster.rollout.pod_template_hash) == 3


def test_retry_after_the_abort_delay_pauses_again_and_promote_completes() -> None:
    extra = MANUAL + "abortScaleDownDelaySeconds: 3\n"
    cluster = deployed(extra=extra)
    cluster.rollout = make_bg("v2", extra=extra)
    cluster.run_until(paused)
    cluster.status = abort(cluster.status)
    cluster.settle()
    assert cluster.replicas(cluster.rollout.pod_template_hash) == 0
    cluster.status = retry(cluster.status)
    cluster.run_until(paused)
    assert cluster.status.message == "BlueGreenPause"
    assert not cluster.status.abort
    cluster.status = bluegreen.promote(cluster.status)
    cluster.run_until(healthy)
    assert selected(cluster) == ("new", "new", "new")


def test_retry_within_the_abort_delay_switches_at_once() -> None:
    # The new ReplicaSet still carries the abort's scale-down deadline, which Argo reads as a
    # fast-tracked update (isBlueGreenFastTracked): no pause, no analysis.
    cluster = deployed(extra=MANUAL + PRE)
    cluster.rollout = make_bg("v2", extra=MANUAL + PRE)
    cluster.run_until(paused)
    cluster.status = abort(cluster.status)
    cluster.run_until(lambda c: any(rs.scale_down_at for rs in c.status.replica_sets))
    cluster.status = retry(cluster.status)
    cluster.run_until(healthy)
    assert len(cluster.started) == 1


def test_promote_full_skips_the_pause_and_the_analysis() -> None:
    extra = MANUAL + PRE + POST
    cluster = deployed(extra=extra)
    cluster.plan = lambda request: [(0.0, AnalysisPhase.RUNNING, "")]
    cluster.rollout = make_bg("v2", extra=extra)
    cluster.run_until(lambda c: bool(c.started))
    cluster.status = strategies.promote(cluster.status, cluster.rollout, full=True)
    cluster.run_until(healthy)
    # e2e TestBlueGreenPromoteFull: the running pre-promotion run is the only one.
    assert len(cluster.started) == 1
    assert cluster.terminated == [cluster.started[0].name]
    completed = [m for r, m in reasons_and_messages(cluster) if r == "RolloutCompleted"]
    assert completed[-1].endswith(": Full promotion requested")


# --- scale-down delays and preview size ------------------------------------------------------


@pytest.mark.parametrize(("delay", "expected"), [(5, 5.0), (0, None)])
def test_scale_down_delay_seconds(delay: int, expected: float | None) -> None:
    extra = f"scaleDownDelaySeconds: {delay}\n"
    cluster = deployed(extra=extra)
    old_hash = cluster.status.stable_rs
    cluster.rollout = make_bg("v2", extra=extra)
    cluster.run_until(healthy)
    promoted_at = cluster.now
    cluster.settle(limit=3_600)
    downs = [
        e for e in cluster.events if e.message.startswith(f"Scaled down ReplicaSet web-{old_hash}")
    ]
    if expected is None:
        # No deadline is ever set, so it is never scaled down (argoproj/argo-rollouts#1992).
        assert downs == []
        assert cluster.replicas(old_hash) == 3
    else:
        assert [round(e.at - promoted_at, 2) for e in downs] == [expected]


def test_preview_replica_count_matches_argos_e2e_counts() -> None:
    extra = MANUAL + "previewReplicaCount: 1\nscaleDownDelaySeconds: 5\n"
    cluster = deployed(extra=extra, replicas=2)
    cluster.rollout = make_bg("v2", extra=extra, replicas=2)
    cluster.run_until(paused)
    status = cluster.status
    # e2e TestBlueGreenPreviewReplicaCount, desired/current/updated/ready/available.
    assert (status.replicas, status.updated_replicas, status.ready_replicas) == (3, 1, 2)
    assert status.available_replicas == 2
    cluster.status = bluegreen.promote(cluster.status)
    cluster.run_until(healthy)
    status = cluster.status
    assert (status.replicas, status.updated_replicas, status.ready_replicas) == (4, 2, 2)
    assert status.available_replicas == 2


def test_rollback_within_the_scale_down_delay_is_healthy_at_once_without_analysis() -> None:
    extra = MANUAL + PRE + POST
    cluster = deployed(extra=extra)
    cluster.rollout = make_bg("v2", extra=extra)
    cluster.run_until(paused)
    cluster.status = bluegreen.promote(cluster.status)
    cluster.run_until(healthy)
    # The pass after the promotion gives the previous ReplicaSet its scale-down deadline.
    cluster.run_until(lambda c: any(rs.scale_down_at for rs in c.status.replica_sets))
    runs = len(cluster.started)
    cluster.events.clear()
    cluster.rollout = make_bg("v1", extra=extra)
    cluster.run_until(healthy)
    assert len(cluster.started) == runs
    assert cluster.status.revision == 3
    completed = [m for r, m in reasons_and_messages(cluster) if r == "RolloutCompleted"]
    v1 = cluster.rollout.pod_template_hash
    assert completed == [
        f"Rollout completed update to revision 3 ({v1}): Rollback to 'web-{v1}' within "
        "scaleDownDelay"
    ]


def test_the_blue_green_engine_refuses_a_canary() -> None:
    from tests.engine.test_canary import BAD_CANARY_STEPS, make_rollout

    with pytest.raises(RolloutError, match="uses canary"):
        bluegreen.step(RolloutStatus(), make_rollout(BAD_CANARY_STEPS), Observations(), 0.0)


# --- invariants under arbitrary sequences ---------------------------------------------------

ACTIONS = st.sampled_from(["tick", "tick", "wait", "promote", "abort", "retry", "full", "release"])


@pytest.mark.slow
@settings(max_examples=100, deadline=None)
@given(
    actions=st.lists(ACTIONS, max_size=50),
    verdict=st.sampled_from(list(AnalysisPhase)),
    options=st.sampled_from(["", MANUAL, PRE, MANUAL + POST, "previewReplicaCount: 1\n" + MANUAL]),
)
def test_invariants_hold_whatever_happens(
    actions: list[str], verdict: AnalysisPhase, options: str
) -> None:
    cluster = FakeCluster(make_bg(extra=options))
    cluster.settle()
    cluster.plan = lambda request: [(0.0, AnalysisPhase.RUNNING, ""), (4.0, verdict, "verdict")]
    versions = iter(range(2, 100))
    for action in ["release", *actions]:
        if action == "release":
            cluster.rollout = make_bg(f"v{next(versions)}", extra=options)
        elif action == "promote":
            cluster.status = bluegreen.promote(cluster.status)
        elif action == "abort":
            cluster.status = abort(cluster.status)
        elif action == "retry":
            cluster.status = retry(cluster.status)
        elif action == "full":
            cluster.status = strategies.promote(cluster.status, cluster.rollout, full=True)
        elif action == "wait":
            cluster.now += 7.0
        before = cluster.status
        decision = cluster.reconcile()
        status = decision.status
        pods = cluster.observations().pods
        if status.active_selector and status.active_selector != before.active_selector:
            # The active Service only moves to a fully available ReplicaSet.
            assert pods[status.active_selector].available == 3
        stable = status.replica_set(status.stable_rs)
        if stable is not None and status.stable_rs != status.current_pod_hash:
            assert stable.replicas == 3
        assert all(0 <= rs.replicas <= 3 for rs in status.replica_sets)
        if status.abort:
            assert status.phase == Phase.DEGRADED
        if status.phase == Phase.HEALTHY:
            assert status.active_selector == status.current_pod_hash
        if action == "tick":
            cluster.now += 1.0
