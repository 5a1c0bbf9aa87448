"""The canary state machine: step progression, pauses, analysis, abort, retry and promote.

A small simulated cluster applies each decision the way the local backend will (pods come up
``pod_boot`` seconds after a scale-up, AnalysisRuns follow a scripted timeline) on a simulated
clock, so every test is deterministic and fast.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_rollout.engine import canary, strategies
from pytest_rollout.engine.analysis.phases import AnalysisPhase
from pytest_rollout.engine.canary import (
    AnalysisRunRequest,
    Decision,
    Observations,
    PauseReason,
    Phase,
    PodCounts,
    RolloutStatus,
    RunKind,
    RunObservation,
)
from pytest_rollout.engine.events import Event
from pytest_rollout.engine.rollout_model import Rollout, parse_rollout
from pytest_rollout.errors import RolloutError
from pytest_rollout.manifests import parse_manifests

FAILED_MESSAGE = 'Metric "error-rate" assessed Failed due to failed (1) > failureLimit (0)'

Plan = Sequence[tuple[float, AnalysisPhase, str]]


def rollout_yaml(
    steps: str,
    *,
    version: str = "v1",
    replicas: int = 4,
    traffic_routing: bool = True,
    extra_canary: str = "",
    extra_spec: str = "",
) -> str:
    routing = ""
    if traffic_routing:
        routing = """\
canaryService: web-canary
stableService: web-stable
trafficRouting:
  plugins:
    argoproj-labs/gatewayAPI:
      httpRoute: web
"""
    strategy = f"{routing}{extra_canary}steps:\n{textwrap.indent(textwrap.dedent(steps), '  ')}"
    return rollout_head(version=version, replicas=replicas, extra_spec=extra_spec) + (
        "    canary:\n" + textwrap.indent(strategy, "      ")
    )


def rollout_head(*, version: str, replicas: int, extra_spec: str = "") -> str:
    """A Rollout ``web`` up to ``strategy:``, its one container running ``version``."""
    return textwrap.dedent(
        f"""\
        apiVersion: argoproj.io/v1alpha1
        kind: Rollout
        metadata:
          name: web
        spec:
          replicas: {replicas}
        {{extra_spec}}  selector:
            matchLabels:
              app: web
          template:
            metadata:
              labels:
                app: web
            spec:
              containers:
                - name: app
                  image: example/web:1
                  env:
                    - name: SERVICE_VERSION
                      value: {version}
          strategy:
        """
    ).replace("{extra_spec}", textwrap.indent(extra_spec, "  "))


def make_rollout(steps: str, **options: object) -> Rollout:
    text = rollout_yaml(steps, **options)  # type: ignore[arg-type]
    return parse_rollout(parse_manifests(text, Path("rollout.yaml"))[0])


BAD_CANARY_STEPS = """\
- setWeight: 5
- pause:
    duration: 10s
- analysis:
    templates:
      - templateName: error-rate
- setWeight: 50
- pause:
    duration: 10s
"""


def succeeding(request: AnalysisRunRequest) -> Plan:
    return [(0.0, AnalysisPhase.RUNNING, ""), (5.0, AnalysisPhase.SUCCESSFUL, "")]


def failing(request: AnalysisRunRequest) -> Plan:
    return [(0.0, AnalysisPhase.RUNNING, ""), (5.0, AnalysisPhase.FAILED, FAILED_MESSAGE)]


@dataclass
class FakeCluster:
    """Applies decisions to simulated ReplicaSets and AnalysisRuns on a simulated clock."""

    rollout: Rollout
    now: float = 1_000.0
    pod_boot: float = 2.0
    # Each further pod of one scale-up becomes Ready this much later than the one before.
    pod_spread: float = 0.0
    plan: Callable[[AnalysisRunRequest], Plan] = succeeding
    status: RolloutStatus = field(default_factory=RolloutStatus)
    events: list[Event] = field(default_factory=list)
    pods: dict[str, list[float]] = field(default_factory=dict)
    runs: dict[str, list[tuple[float, AnalysisPhase, str]]] = field(default_factory=dict)
    started: list[AnalysisRunRequest] = field(default_factory=list)
    terminated: list[str] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    # (time, canary weight, canary selector, available pods behind the canary selector)
    routing_log: list[tuple[float, int | None, str, int]] = field(default_factory=list)

    def observations(self) -> Observations:
        pods = {}
        for pod_hash, ready_times in self.pods.items():
            ready = sum(1 for t in ready_times if t <= self.now)
            pods[pod_hash] = PodCounts(len(ready_times), ready, ready)
        runs = {}
        for name, timeline in self.runs.items():
            seen = [entry for entry in timeline if entry[0] <= self.now]
            if seen:
                runs[name] = RunObservation(seen[-1][1], seen[-1][2])
        return Observations(pods=pods, runs=runs)

    def reconcile(self) -> Decision:
        decision = strategies.step(self.status, self.rollout, self.observations(), self.now)
        self.decisions.append(decision)
        self.status = decision.status
        self.events.extend(decision.events)
        for rs in decision.replica_sets:
            ready_times = self.pods.setdefault(rs.pod_hash, [])
            added = 0
            while len(ready_times) < rs.replicas:
                ready_times.append(self.now + self.pod_boot + added * self.pod_spread)
                added += 1
            # The ReplicaSet controller removes pods that are not ready first.
            ready_times.sort()
            del ready_times[rs.replicas :]
        for request in decision.start_runs:
            self.started.append(request)
            self.runs[request.name] = [(self.now + dt, p, m) for dt, p, m in self.plan(request)]
        for name in decision.terminate_runs:
            self.terminated.append(name)
            timeline = [e for e in self.runs.get(name, []) if e[0] <= self.now]
            if not timeline or not timeline[-1][1].completed:
                timeline.append((self.now, AnalysisPhase.SUCCESSFUL, "Run Terminated"))
            self.runs[name] = timeline
        routing = decision.routing
        behind = self.observations().pods.get(routing.canary_hash, PodCounts()).available
        self.routing_log.append((self.now, routing.canary_weight, routing.canary_hash, behind))
        return decision

    def _next_time(self, decision: Decision) -> float | None:
        times = [t for ready in self.pods.values() for t in ready if t > self.now]
        times += [e[0] for timeline in self.runs.values() for e in timeline if e[0] > self.now]
        if decision.wake_at is not None and decision.wake_at > self.now:
            times.append(decision.wake_at)
        return min(times) if times else None

    def run_until(self, condition: Callable[[FakeCluster], bool], *, limit: float = 900.0) -> None:
        deadline = self.now + limit
        for _ in range(10_000):
            decision = self.reconcile()
            if condition(self):
                return
            if decision.changed:
                continue
            upcoming = self._next_time(decision)
            if upcoming is None or upcoming > deadline:
                raise AssertionError(
                    f"stuck at t={self.now}: phase {self.status.phase} "
                    f"({self.status.message!r}), step {self.status.current_step_index}, "
                    f"events {[e.reason for e in self.events]}"
                )
            self.now = upcoming
        raise AssertionError("no quiescence after 10,000 reconciliations")

    def settle(self, *, limit: float = 900.0) -> None:
        """Reconcile until nothing changes and nothing is scheduled (or ``limit`` passes)."""
        deadline = self.now + limit
        for _ in range(10_000):
            decision = self.reconcile()
            if decision.changed:
                continue
            upcoming = self._next_time(decision)
            if upcoming is None or upcoming > deadline:
                return
            self.now = upcoming
        raise AssertionError("no quiescence after 10,000 reconciliations")

    def release(self, rollout: Rollout) -> None:
        self.rollout = rollout
        self.events.clear()

    def reasons(self) -> list[str]:
        return [event.reason for event in self.events]

    def replicas(self, pod_hash: str) -> int:
        rs = self.status.replica_set(pod_hash)
        return rs.replicas if rs is not None else 0


def healthy(cluster: FakeCluster) -> bool:
    return cluster.status.phase == Phase.HEALTHY


def deployed(steps: str = BAD_CANARY_STEPS, **options: object) -> FakeCluster:
    cluster = FakeCluster(make_rollout(steps, **options))
    cluster.settle()
    assert cluster.status.phase == Phase.HEALTHY, cluster.status
    cluster.events.clear()
    return cluster


# --- first deploy --------------------------------------------------------------------------


def test_first_deploy_skips_steps_and_completes_as_initial_deploy() -> None:
    cluster = FakeCluster(make_rollout(BAD_CANARY_STEPS))
    cluster.settle()
    rollout = cluster.rollout
    status = cluster.status
    assert status.phase == Phase.HEALTHY
    assert status.stable_rs == rollout.pod_template_hash
    assert status.current_step_index == 5
    assert cluster.replicas(rollout.pod_template_hash) == 4
    assert cluster.started == []
    completed = [e for e in cluster.events if e.reason == "RolloutCompleted"]
    assert [e.message for e in completed] == [
        f"Rollout completed update to revision 1 ({rollout.pod_template_hash}): Initial deploy"
    ]
    assert status.weights is not None
    assert status.weights.canary == 0
    assert cluster.decisions[-1].routing.stable_hash == rollout.pod_template_hash


def test_first_deploy_is_progressing_until_pods_are_available() -> None:
    cluster = FakeCluster(make_rollout(BAD_CANARY_STEPS))
    cluster.run_until(lambda c: c.status.stable_rs != "")
    assert cluster.status.phase == Phase.PROGRESSING
    assert cluster.status.message == "more replicas need to be updated"


# --- setWeight -----------------------------------------------------------------------------


def test_weight_moves_only_once_the_canary_pods_are_available() -> None:
    cluster = deployed()
    cluster.pod_boot = 7.0
    cluster.release(make_rollout(BAD_CANARY_STEPS, version="v2"))
    new_hash = cluster.rollout.pod_template_hash
    cluster.run_until(lambda c: c.status.current_step_index == 1)
    for _, weight, selector, available in cluster.routing_log:
        if weight:
            assert selector == new_hash
            assert available >= 1, cluster.routing_log
    # Five percent of four replicas is one pod; the stable stays at four.
    assert cluster.replicas(new_hash) == 1
    assert cluster.replicas(cluster.status.stable_rs) == 4
    assert cluster.status.weights is not None
    assert cluster.status.weights.canary == 5
    step_done = [e.message for e in cluster.events if e.reason == "RolloutStepCompleted"]
    assert step_done == ["Rollout step 1/5 completed (setWeight: 5)"]


def test_weight_waits_until_every_canary_pod_of_the_step_is_available() -> None:
    steps = "- setWeight: 25\n- pause: {duration: 5s}\n- setWeight: 75\n- pause: {}\n"
    cluster = deployed(steps)
    cluster.pod_spread = 3.0
    cluster.release(make_rollout(steps, version="v2"))
    new_hash = cluster.rollout.pod_template_hash
    cluster.run_until(lambda c: c.status.phase == Phase.PAUSED and c.status.current_step_index == 3)
    weights = [weight for _, weight, _, _ in cluster.routing_log]
    assert 75 in weights
    for _, weight, selector, available in cluster.routing_log:
        if weight:
            # Never more traffic than the available canary pods can take.
            assert selector == new_hash
            assert available >= traffic_weight_to_replicas(4, weight), cluster.routing_log
    # While the second and third canary pods start, the router keeps 25.
    waiting = [w for t, w, _, available in cluster.routing_log if w and available == 2]
    assert waiting
    assert set(waiting) == {25}


def test_a_canary_that_never_becomes_ready_keeps_the_previous_weight_and_does_not_abort() -> None:
    cluster = deployed()
    cluster.pod_boot = 10_000.0  # never Ready within the test
    cluster.release(make_rollout(BAD_CANARY_STEPS, version="v2"))
    cluster.settle(limit=300)
    assert cluster.status.current_step_index == 0
    assert cluster.status.weights is not None
    assert cluster.status.weights.canary == 0
    assert not cluster.status.abort
    assert cluster.status.phase == Phase.PROGRESSING


def test_progress_deadline_degrades_and_aborts_only_when_asked() -> None:
    steps = "- setWeight: 20\n- pause: {}\n"
    for abort_on_deadline in (False, True):
        flag = str(abort_on_deadline).lower()
        extra = f"progressDeadlineSeconds: 60\nprogressDeadlineAbort: {flag}\n"
        cluster = deployed(steps, extra_spec=extra)
        cluster.pod_boot = 10_000.0
        cluster.release(make_rollout(steps, version="v2", extra_spec=extra))
        cluster.settle(limit=200)
        assert cluster.status.phase == Phase.DEGRADED
        assert cluster.status.abort is abort_on_deadline
        if abort_on_deadline:
            assert cluster.status.message.startswith("RolloutAborted: Rollout aborted update to")
        else:
            name = cluster.rollout.replica_set_name(cluster.rollout.pod_template_hash)
            assert cluster.status.message == (
                f'ProgressDeadlineExceeded: ReplicaSet "{name}" has timed out progressing.'
            )


# --- pause ---------------------------------------------------------------------------------


def test_pause_with_duration_resumes_by_itself_after_the_duration() -> None:
    cluster = deployed("- setWeight: 25\n- pause: {duration: 10s}\n- setWeight: 50\n")
    cluster.release(
        make_rollout("- setWeight: 25\n- pause: {duration: 10s}\n- setWeight: 50\n", version="v2")
    )
    cluster.run_until(lambda c: c.status.phase == Phase.PAUSED)
    assert cluster.status.message == "CanaryPauseStep"
    started = cluster.status.pause_conditions[0].start_time
    cluster.run_until(lambda c: c.status.current_step_index == 2)
    assert cluster.now > started + 10
    assert cluster.now - started < 10.1
    assert [
        e.message for e in cluster.events if e.reason in ("RolloutPaused", "RolloutResumed")
    ] == [
        "Rollout is paused (CanaryPauseStep)",
        "Rollout is resumed",
    ]


def test_pause_without_duration_waits_for_promote() -> None:
    steps = "- setWeight: 25\n- pause: {}\n- setWeight: 50\n"
    cluster = deployed(steps)
    cluster.release(make_rollout(steps, version="v2"))
    cluster.run_until(lambda c: c.status.phase == Phase.PAUSED)
    cluster.settle(limit=3_600)
    assert cluster.status.phase == Phase.PAUSED
    assert cluster.status.current_step_index == 1
    cluster.status = canary.promote(cluster.status, cluster.rollout)
    cluster.run_until(healthy)
    messages = [e.message for e in cluster.events if e.reason == "RolloutStepCompleted"]
    assert messages == [
        "Rollout step 1/3 completed (setWeight: 25)",
        "Rollout step 2/3 completed (pause)",
        "Rollout step 3/3 completed (setWeight: 50)",
    ]
    # promote clears the pause condition itself: Argo records no RolloutResumed for it.
    assert "RolloutResumed" not in cluster.reasons()


# --- analysis ------------------------------------------------------------------------------


def test_successful_analysis_step_moves_on_and_the_rollout_completes() -> None:
    cluster = deployed()
    old_hash = cluster.status.stable_rs
    cluster.release(make_rollout(BAD_CANARY_STEPS, version="v2"))
    new_hash = cluster.rollout.pod_template_hash
    cluster.run_until(healthy)
    assert cluster.status.stable_rs == new_hash
    assert [r.name for r in cluster.started] == [f"web-{new_hash}-2-2"]
    assert cluster.started[0].kind == RunKind.STEP
    completed = [e.message for e in cluster.events if e.reason == "RolloutCompleted"]
    assert completed == [
        f"Rollout completed update to revision 2 ({new_hash}): Completed all 5 canary steps"
    ]
    assert cluster.replicas(new_hash) == 4
    # The previous stable stays up for scaleDownDelaySeconds (30 s) after promotion.
    promoted_at = next(e.at for e in cluster.events if e.reason == "RolloutCompleted")
    assert cluster.replicas(old_hash) == 4
    cluster.settle()
    assert cluster.replicas(old_hash) == 0
    scaled_down = [
        e for e in cluster.events if e.message.startswith(f"Scaled down ReplicaSet web-{old_hash}")
    ]
    assert len(scaled_down) == 1
    assert 30 <= scaled_down[0].at - promoted_at < 31


@pytest.mark.parametrize("verdict", [AnalysisPhase.FAILED, AnalysisPhase.ERROR])
def test_failed_or_errored_analysis_aborts(verdict: AnalysisPhase) -> None:
    cluster = deployed()
    cluster.plan = lambda request: [
        (0.0, AnalysisPhase.RUNNING, ""),
        (5.0, verdict, FAILED_MESSAGE),
    ]
    cluster.release(make_rollout(BAD_CANARY_STEPS, version="v2"))
    new_hash = cluster.rollout.pod_template_hash
    cluster.run_until(lambda c: c.status.abort)
    aborted_at = cluster.now
    status = cluster.status
    assert status.phase == Phase.DEGRADED
    assert status.message == (
        "RolloutAborted: Rollout aborted update to revision 2: Step-based analysis phase "
        f"error/failed: {FAILED_MESSAGE}"
    )
    assert status.current_step_index == 0
    # Weight 0 on the very next pass; the canary keeps its pod for abortScaleDownDelaySeconds.
    decision = cluster.reconcile()
    assert decision.routing.canary_weight == 0
    assert decision.routing.canary_hash == status.stable_rs
    assert cluster.now == aborted_at
    assert cluster.replicas(new_hash) == 1
    cluster.settle()
    assert cluster.replicas(new_hash) == 0
    scaled = [e for e in cluster.events if e.reason == "ScalingReplicaSet"][-1]
    assert scaled.message == f"Scaled down ReplicaSet web-{new_hash} (revision 2) from 1 to 0"
    assert scaled.at == pytest.approx(aborted_at + 30)
    assert cluster.status.phase == Phase.DEGRADED


def test_abort_scale_down_delay_is_taken_from_the_spec() -> None:
    for delay, expected in ((10, 10.0), (0, None)):
        extra = f"abortScaleDownDelaySeconds: {delay}\n"
        cluster = deployed(extra_canary=extra)
        cluster.plan = failing
        cluster.release(make_rollout(BAD_CANARY_STEPS, version="v2", extra_canary=extra))
        new_hash = cluster.rollout.pod_template_hash
        cluster.run_until(lambda c: c.status.abort)
        aborted_at = cluster.now
        cluster.settle(limit=600)
        downs = [
            e
            for e in cluster.events
            if e.message.startswith(f"Scaled down ReplicaSet web-{new_hash}")
        ]
        if expected is None:
            assert downs == []
            assert cluster.replicas(new_hash) == 1
        else:
            assert [round(e.at - aborted_at, 3) for e in downs] == [expected]


def test_inconclusive_analysis_pauses_and_promote_skips_the_step() -> None:
    cluster = deployed()
    cluster.plan = lambda request: [
        (0.0, AnalysisPhase.RUNNING, ""),
        (5.0, AnalysisPhase.INCONCLUSIVE, "inconclusive"),
    ]
    cluster.release(make_rollout(BAD_CANARY_STEPS, version="v2"))
    cluster.run_until(lambda c: c.status.message == PauseReason.INCONCLUSIVE_ANALYSIS)
    assert cluster.status.phase == Phase.PAUSED
    assert cluster.status.current_step_index == 2
    assert "Rollout is paused (InconclusiveAnalysisRun)" in [e.message for e in cluster.events]
    cluster.settle(limit=600)
    assert cluster.status.phase == Phase.PAUSED
    cluster.plan = succeeding
    cluster.status = canary.promote(cluster.status, cluster.rollout)
    assert cluster.status.current_step_index == 3
    cluster.run_until(healthy)
    assert len(cluster.started) == 1


def test_background_analysis_starts_at_its_starting_step_and_ends_with_the_rollout() -> None:
    extra = "analysis:\n  templates:\n    - templateName: error-rate\n  startingStep: 2\n"
    cluster = deployed(extra_canary=extra)
    cluster.plan = lambda request: [(0.0, AnalysisPhase.RUNNING, "")]
    cluster.release(make_rollout(BAD_CANARY_STEPS, version="v2", extra_canary=extra))
    new_hash = cluster.rollout.pod_template_hash
    cluster.run_until(lambda c: c.status.current_step_index == 2)
    background = [r for r in cluster.started if r.kind == RunKind.BACKGROUND]
    assert background == []
    # The step analysis would block forever with this plan: let the step succeed.
    cluster.plan = succeeding
    cluster.run_until(lambda c: any(r.kind == RunKind.BACKGROUND for r in c.started))
    assert [r.name for r in cluster.started if r.kind == RunKind.BACKGROUND] == [
        f"web-{new_hash}-2"
    ]
    # startingStep counts from 0: it started at step index 2, not before.
    assert cluster.status.current_step_index == 2


def test_background_analysis_is_terminated_when_the_rollout_completes() -> None:
    extra = "analysis:\n  templates:\n    - templateName: error-rate\n"
    cluster = deployed(extra_canary=extra)

    def plan(request: AnalysisRunRequest) -> Plan:
        if request.kind == RunKind.BACKGROUND:
            return [(0.0, AnalysisPhase.RUNNING, "")]
        return succeeding(request)

    cluster.plan = plan
    cluster.release(make_rollout(BAD_CANARY_STEPS, version="v2", extra_canary=extra))
    cluster.run_until(healthy)
    background = [r.name for r in cluster.started if r.kind == RunKind.BACKGROUND]
    assert len(background) == 1
    # Terminated on the pass after promotion, when the Rollout is fully promoted.
    cluster.reconcile()
    assert cluster.terminated == background


def test_failed_background_analysis_aborts() -> None:
    extra = "analysis:\n  templates:\n    - templateName: error-rate\n"
    cluster = deployed(extra_canary=extra)

    def plan(request: AnalysisRunRequest) -> Plan:
        if request.kind == RunKind.BACKGROUND:
            return [(0.0, AnalysisPhase.RUNNING, ""), (3.0, AnalysisPhase.FAILED, FAILED_MESSAGE)]
        return [(0.0, AnalysisPhase.RUNNING, "")]

    cluster.plan = plan
    cluster.release(make_rollout(BAD_CANARY_STEPS, version="v2", extra_canary=extra))
    cluster.run_until(lambda c: c.status.abort)
    assert cluster.status.message == (
        "RolloutAborted: Rollout aborted update to revision 2: Background analysis phase "
        f"error/failed: {FAILED_MESSAGE}"
    )
    # The step analysis still running is terminated on the next pass.
    cluster.reconcile()
    step_runs = [r.name for r in cluster.started if r.kind == RunKind.STEP]
    assert cluster.terminated == step_runs


# --- commands ------------------------------------------------------------------------------


def test_manual_abort_then_retry_starts_over_and_reruns_analysis() -> None:
    cluster = deployed()
    cluster.release(make_rollout(BAD_CANARY_STEPS, version="v2"))
    new_hash = cluster.rollout.pod_template_hash
    cluster.run_until(lambda c: c.status.phase == Phase.PAUSED)
    cluster.status = canary.abort(cluster.status)
    cluster.run_until(lambda c: c.status.phase == Phase.DEGRADED)
    assert cluster.status.message == "RolloutAborted: Rollout aborted update to revision 2"
    aborted = [e for e in cluster.events if e.reason == "RolloutAborted"]
    assert [(e.type, e.message) for e in aborted] == [
        ("Warning", "Rollout aborted update to revision 2")
    ]
    cluster.settle()
    assert cluster.replicas(new_hash) == 0
    cluster.status = canary.retry(cluster.status)
    cluster.run_until(lambda c: c.status.current_step_index == 2 and bool(c.started))
    cluster.run_until(healthy)
    assert cluster.status.stable_rs == new_hash


def test_retrying_an_analysis_abort_runs_the_analysis_again_under_a_new_name() -> None:
    cluster = deployed()
    cluster.plan = failing
    cluster.release(make_rollout(BAD_CANARY_STEPS, version="v2"))
    new_hash = cluster.rollout.pod_template_hash
    cluster.run_until(lambda c: c.status.abort)
    cluster.plan = succeeding
    cluster.status = canary.retry(cluster.status)
    cluster.run_until(healthy)
    assert [r.name for r in cluster.started] == [f"web-{new_hash}-2-2", f"web-{new_hash}-2-2.1"]


def test_promote_full_skips_remaining_steps_and_analysis() -> None:
    cluster = deployed()
    cluster.release(make_rollout(BAD_CANARY_STEPS, version="v2"))
    cluster.run_until(lambda c: c.status.phase == Phase.PAUSED)
    cluster.status = canary.promote_full(cluster.status)
    cluster.run_until(healthy)
    assert cluster.started == []
    completed = [e.message for e in cluster.events if e.reason == "RolloutCompleted"]
    assert completed[-1].endswith(": Full promotion requested")


def test_promote_during_analysis_skips_the_analysis_step() -> None:
    cluster = deployed()
    cluster.plan = lambda request: [(0.0, AnalysisPhase.RUNNING, "")]
    cluster.release(make_rollout(BAD_CANARY_STEPS, version="v2"))
    cluster.run_until(lambda c: bool(c.started))
    cluster.status = canary.promote(cluster.status, cluster.rollout)
    cluster.run_until(healthy)
    assert cluster.terminated == [cluster.started[0].name]


def test_going_back_to_the_stable_template_skips_steps() -> None:
    cluster = deployed()
    stable_hash = cluster.status.stable_rs
    cluster.release(make_rollout(BAD_CANARY_STEPS, version="v2"))
    canary_hash = cluster.rollout.pod_template_hash
    cluster.run_until(lambda c: c.status.phase == Phase.PAUSED)
    cluster.release(make_rollout(BAD_CANARY_STEPS, version="v1"))
    cluster.settle()
    assert cluster.status.phase == Phase.HEALTHY
    assert cluster.status.stable_rs == stable_hash
    assert cluster.replicas(canary_hash) == 0
    assert [(e.reason, e.message) for e in cluster.events if e.reason == "SkipSteps"] == [
        ("SkipSteps", "Rollback to stable ReplicaSets")
    ]
    assert "RolloutCompleted" not in cluster.reasons()
    assert cluster.status.revision == 3


def test_a_newer_release_mid_update_replaces_the_intermediate_canary() -> None:
    cluster = deployed()
    cluster.release(make_rollout(BAD_CANARY_STEPS, version="v2"))
    v2 = cluster.rollout.pod_template_hash
    cluster.run_until(lambda c: c.status.phase == Phase.PAUSED)
    cluster.release(make_rollout(BAD_CANARY_STEPS, version="v3"))
    cluster.run_until(healthy)
    assert cluster.replicas(v2) == 0
    assert cluster.status.revision == 3


# --- setCanaryScale ------------------------------------------------------------------------


SMOKE_STEPS = """\
- setCanaryScale:
    replicas: 1
- analysis:
    templates:
      - templateName: smoke-check
- setCanaryScale:
    matchTrafficWeight: true
- setWeight: 50
- pause: {}
"""


def test_set_canary_scale_runs_a_canary_pod_without_traffic() -> None:
    cluster = deployed(SMOKE_STEPS)
    cluster.plan = lambda request: [(0.0, AnalysisPhase.RUNNING, "")]
    cluster.release(make_rollout(SMOKE_STEPS, version="v2"))
    new_hash = cluster.rollout.pod_template_hash
    cluster.run_until(lambda c: bool(c.started))
    assert cluster.replicas(new_hash) == 1
    assert cluster.status.weights is not None
    assert cluster.status.weights.canary == 0
    # The canary Service points at the canary pod, so a smoke check can reach it.
    assert cluster.decisions[-1].routing.canary_hash == new_hash
    cluster.runs[cluster.started[0].name].append((cluster.now, AnalysisPhase.SUCCESSFUL, ""))
    cluster.run_until(lambda c: c.status.phase == Phase.PAUSED)
    assert cluster.replicas(new_hash) == 2
    assert cluster.status.weights.canary == 50


def test_the_canary_engine_refuses_a_blue_green_rollout() -> None:
    text = textwrap.dedent(
        """\
        apiVersion: argoproj.io/v1alpha1
        kind: Rollout
        metadata:
          name: web
        spec:
          selector:
            matchLabels:
              app: web
          template:
            metadata:
              labels:
                app: web
          strategy:
            blueGreen:
              activeService: web-active
        """
    )
    rollout = parse_rollout(parse_manifests(text, Path("bg.yaml"))[0])
    with pytest.raises(RolloutError, match="uses blueGreen"):
        canary.step(RolloutStatus(), rollout, Observations(), 0.0)


# --- invariants under arbitrary sequences ---------------------------------------------------

ACTIONS = st.sampled_from(
    ["tick", "tick", "wait", "wait", "promote", "abort", "retry", "full", "release"]
)


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(
    actions=st.lists(ACTIONS, max_size=60),
    verdict=st.sampled_from(list(AnalysisPhase)),
    replicas=st.integers(min_value=1, max_value=7),
)
def test_invariants_hold_whatever_happens(
    actions: list[str], verdict: AnalysisPhase, replicas: int
) -> None:
    cluster = FakeCluster(make_rollout(BAD_CANARY_STEPS, replicas=replicas))
    cluster.settle()
    cluster.plan = lambda request: [(0.0, AnalysisPhase.RUNNING, ""), (4.0, verdict, "verdict")]
    versions = iter(range(2, 100))
    promoted = False
    for action in ["release", *actions]:
        # The pass that sees a new template changes no weight (as in Argo): one a promote set
        # still stands during it.
        carried = promoted and action == "release"
        promoted = action in ("promote", "full") or (promoted and action != "release")
        act(
            cluster,
            action,
            lambda: make_rollout(BAD_CANARY_STEPS, replicas=replicas, version=f"v{next(versions)}"),
        )
        aborted_before = cluster.status.abort
        decision = cluster.reconcile()
        check_invariants(
            cluster, decision, replicas, aborted_before=aborted_before, promoted=promoted or carried
        )
        if action == "tick":
            cluster.now += 1.0


def act(cluster: FakeCluster, action: str, release: Callable[[], Rollout]) -> None:
    """One action of an arbitrary sequence, before the next reconciliation: a release of
    ``release()``, a ``kubectl argo rollouts`` command, or seven seconds passing (``wait``)."""
    if action == "release":
        cluster.rollout = release()
    elif action == "promote":
        cluster.status = canary.promote(cluster.status, cluster.rollout)
    elif action == "abort":
        cluster.status = canary.abort(cluster.status)
    elif action == "retry":
        cluster.status = canary.retry(cluster.status)
    elif action == "full":
        cluster.status = canary.promote_full(cluster.status)
    elif action == "wait":
        cluster.now += 7.0


def check_invariants(
    cluster: FakeCluster,
    decision: Decision,
    replicas: int,
    *,
    aborted_before: bool,
    promoted: bool,
) -> None:
    status = decision.status
    weight = decision.routing.canary_weight
    assert weight is not None
    assert 0 <= weight <= 100
    if weight > 0 and not promoted:
        # Traffic only goes to canary pods that are available, never more than they can take.
        # (A promote that skips a setWeight step takes that weight at once, as in Argo.)
        behind = cluster.observations().pods.get(decision.routing.canary_hash, PodCounts())
        assert behind.available >= traffic_weight_to_replicas(replicas, weight)
    if aborted_before and status.abort:
        # An abort takes the canary's weight away on the pass after it, and keeps it away.
        assert weight == 0
    if status.abort:
        assert status.phase == Phase.DEGRADED
    stable = status.replica_set(status.stable_rs)
    if stable is not None and status.stable_rs != status.current_pod_hash:
        assert stable.replicas == replicas
    for rs in status.replica_sets:
        assert 0 <= rs.replicas <= replicas
    assert status.phase in Phase
    if status.current_step_index is not None:
        assert 0 <= status.current_step_index <= 5


def test_status_starts_empty_and_decisions_are_pure() -> None:
    rollout = make_rollout(BAD_CANARY_STEPS)
    first = canary.step(RolloutStatus(), rollout, Observations(), 5.0)
    again = canary.step(RolloutStatus(), rollout, Observations(), 5.0)
    assert first == again
    assert replace(first.status) == first.status


# --- replica math --------------------------------------------------------------------------

from pytest_rollout.engine.deployment import resolve_fenceposts  # noqa: E402
from pytest_rollout.engine.replicas import (  # noqa: E402
    CanaryPosition,
    ReplicaCounts,
    ReplicaSetSize,
    aborted_canary_replicas,
    approximate_weighted_counts,
    basic_canary_replica_counts,
    traffic_routed_replica_counts,
    traffic_weight_to_replicas,
)
from pytest_rollout.engine.rollout_model import SetCanaryScale, SetWeight  # noqa: E402


@given(
    replicas=st.integers(min_value=0, max_value=500), weight=st.integers(min_value=0, max_value=100)
)
def test_canary_size_is_the_ceiling_of_the_weighted_share(replicas: int, weight: int) -> None:
    size = traffic_weight_to_replicas(replicas, weight)
    assert size * 100 >= replicas * weight > (size - 1) * 100 or size == 0
    assert 0 <= size <= replicas
    if weight > 0 and replicas > 0:
        assert size >= 1
    if weight < 100:
        assert size <= traffic_weight_to_replicas(replicas, weight + 1)


def position(
    steps: tuple[SetWeight | SetCanaryScale, ...], index: int, **flags: bool
) -> CanaryPosition:
    return CanaryPosition(steps, index, stable_hash="s", current_hash="c", **flags)


@given(
    replicas=st.integers(min_value=1, max_value=50),
    weights=st.lists(st.integers(min_value=0, max_value=100), min_size=1, max_size=5),
    data=st.data(),
)
def test_traffic_routed_stable_stays_full_and_canary_follows_the_last_weight(
    replicas: int, weights: list[int], data: st.DataObject
) -> None:
    steps = tuple(SetWeight(w) for w in weights)
    index = data.draw(st.integers(min_value=0, max_value=len(steps)))
    counts = traffic_routed_replica_counts(replicas, position(steps, index))
    assert counts.stable == replicas
    expected_weight = 100 if index == len(steps) else weights[index]
    assert counts.canary == traffic_weight_to_replicas(replicas, expected_weight)
    aborted = traffic_routed_replica_counts(replicas, position(steps, index, aborted=True))
    assert (aborted.canary, aborted.stable) == (0, replicas)


def test_set_canary_scale_overrides_until_match_traffic_weight() -> None:
    steps = (
        SetCanaryScale(replicas=3),
        SetWeight(10),
        SetCanaryScale(weight=50),
        SetCanaryScale(match_traffic_weight=True),
    )
    sizes = [traffic_routed_replica_counts(10, position(steps, i)).canary for i in range(4)]
    assert sizes == [3, 3, 5, 1]
    # An abort drops setCanaryScale, unless abortScaleDownDelaySeconds: 0 keeps the canary up.
    assert traffic_routed_replica_counts(10, position(steps, 0, aborted=True)).canary == 0
    kept = traffic_routed_replica_counts(
        10, position(steps, 0, aborted=True), abort_scale_down_disabled=True
    )
    assert kept.canary == 3
    # Argo's unit cases: an explicit count may exceed replicas, and so may a weight above 100.
    only = (SetCanaryScale(replicas=9),)
    assert traffic_routed_replica_counts(1, position(only, 0)) == ReplicaCounts(canary=9, stable=1)
    heavy = (SetCanaryScale(weight=200),)
    assert traffic_routed_replica_counts(4, position(heavy, 0)) == ReplicaCounts(canary=8, stable=4)
    # Before any update (no stable yet) or when fully promoted the canary is the whole Rollout.
    initial = CanaryPosition(steps, 0, stable_hash="", current_hash="c")
    assert traffic_routed_replica_counts(10, initial).canary == 10
    assert traffic_routed_replica_counts(10, position(steps, 1, promote_full=True)).canary == 10


@given(
    current=st.integers(min_value=0, max_value=20),
    deadline=st.none() | st.floats(min_value=0, max_value=100),
    now=st.floats(min_value=0, max_value=100),
)
def test_aborted_canary_is_scaled_down_only_after_its_deadline(
    current: int, deadline: float | None, now: float
) -> None:
    size = aborted_canary_replicas(current, scale_down_at=deadline, now=now)
    if deadline is None or deadline > now:
        assert size == current
    else:
        assert size == 0


# Cases of TestCalculateReplicaCountsForCanary (argoproj/argo-rollouts
# utils/replicaset/canary_test.go) without traffic routing: replicas, setWeight, maxSurge,
# maxUnavailable, stable (spec, available), canary (spec, available), an older ReplicaSet
# (spec, available), and the expected (stable, canary).
BASIC_CASES = [
    (10, 100, 3, 0, (7, 8), (6, 3), None, (7, 6)),
    (10, 20, 2, 0, (10, 10), (0, 0), None, (10, 2)),
    (10, 20, "20%", 0, (10, 10), (0, 0), None, (10, 2)),
    (10, 20, "20%", 0, (10, 10), (2, 2), None, (8, 2)),
    (10, 30, 2, 0, (10, 10), (0, 0), None, (10, 2)),
    (10, 20, 0, 2, (10, 10), (0, 0), None, (8, 0)),
    (10, 20, 0, "20%", (10, 10), (0, 0), None, (8, 0)),
    (10, 30, 0, 2, (10, 10), (0, 0), None, (8, 0)),
    (10, 50, 2, 1, (10, 10), (0, 0), None, (9, 2)),
    (10, 0, 1, 1, (10, 10), (1, 1), None, (10, 0)),
    (10, 100, 1, 1, (1, 1), (10, 10), None, (0, 10)),
    (1, 20, 1, 0, (1, 1), (0, 0), None, (1, 1)),
    (1, 90, 1, 0, (1, 1), (0, 0), None, (1, 1)),
    (10, 30, 1, 0, (1, 1), (0, 0), (3, 3), (7, 1)),
    (10, 30, 0, 3, (8, 5), (4, 4), None, (7, 3)),
    (10, 100, 1, 0, (10, 2), (10, 8), None, (2, 9)),
    (10, 30, 0, 1, (8, 6), (4, 2), (3, 3), (8, 4)),
    (10, 5, 0, 1, (10, 10), (0, 0), None, (9, 0)),
    (10, 5, 0, 1, (9, 9), (0, 0), None, (9, 1)),
    (10, 10, "0%", "0%", (10, 10), (0, 0), None, (9, 0)),
    (4, 100, 1, 0, (4, 1), (0, 0), None, (4, 1)),
    (3, 99, 0, 2, (3, 3), (0, 0), None, (1, 0)),
    (3, 99, 0, 2, (1, 1), (0, 0), None, (1, 2)),
    (4, 100, 1, 0, (4, 1), (1, 1), None, (3, 1)),
    (4, 0, 1, 0, (0, 0), (4, 4), None, (1, 4)),
]


@pytest.mark.parametrize(
    ("replicas", "weight", "surge", "unavailable", "stable", "new", "older", "expected"),
    BASIC_CASES,
)
def test_basic_canary_counts_match_argos_unit_cases(
    replicas: int,
    weight: int,
    surge: int | str,
    unavailable: int | str,
    stable: tuple[int, int],
    new: tuple[int, int],
    older: tuple[int, int] | None,
    expected: tuple[int, int],
) -> None:
    resolved_surge, resolved_unavailable = resolve_fenceposts(surge, unavailable, replicas)
    counts = basic_canary_replica_counts(
        replicas,
        weight,
        surge=resolved_surge,
        unavailable=min(resolved_unavailable, replicas),
        new=ReplicaSetSize(*new),
        stable=ReplicaSetSize(*stable),
        stable_is_new=False,
        others=[ReplicaSetSize(*older)] if older else [],
    )
    assert (counts.stable, counts.canary) == expected


@given(
    replicas=st.integers(min_value=1, max_value=60),
    weight=st.integers(min_value=0, max_value=100),
    surge=st.integers(min_value=0, max_value=3),
)
def test_weight_approximation_sums_to_replicas_or_one_more(
    replicas: int, weight: int, surge: int
) -> None:
    canary_count, stable_count = approximate_weighted_counts(replicas, weight, surge)
    total = canary_count + stable_count
    assert total == replicas or (surge > 0 and total == replicas + 1)
    if 0 < weight < 100 and total >= 2 and not (replicas == 1 and surge == 0):
        assert canary_count >= 1
        assert stable_count >= 1


@given(
    replicas=st.integers(min_value=1, max_value=30),
    surge=st.sampled_from([0, 1, 2, "25%", "50%"]),
    unavailable=st.sampled_from([0, 1, "25%"]),
    weight=st.integers(min_value=0, max_value=100),
    new_size=st.integers(min_value=0, max_value=30),
)
def test_basic_canary_never_exceeds_max_surge(
    replicas: int, surge: int | str, unavailable: int | str, weight: int, new_size: int
) -> None:
    resolved_surge, resolved_unavailable = resolve_fenceposts(surge, unavailable, replicas)
    new_size = min(new_size, replicas)
    stable_size = replicas  # a fully available stable, a canary still starting
    counts = basic_canary_replica_counts(
        replicas,
        weight,
        surge=resolved_surge,
        unavailable=min(resolved_unavailable, replicas),
        new=ReplicaSetSize(new_size, 0),
        stable=ReplicaSetSize(stable_size, stable_size),
        stable_is_new=False,
        others=[],
    )
    before = new_size + stable_size
    assert counts.canary + counts.stable <= max(before, replicas + resolved_surge)
    assert counts.canary >= 0
    assert counts.stable >= 0


def test_old_replica_sets_beyond_the_revision_history_limit_are_deleted() -> None:
    steps = "- setWeight: 50\n"
    cluster = deployed(steps, extra_spec="revisionHistoryLimit: 1\n")
    first = cluster.rollout.replica_set_name(cluster.status.stable_rs)
    for version in ("v2", "v3"):
        cluster.release(
            make_rollout(steps, version=version, extra_spec="revisionHistoryLimit: 1\n")
        )
        cluster.settle()
        assert cluster.status.phase == Phase.HEALTHY
    deleted = [name for d in cluster.decisions for name in d.deleted_replica_sets]
    assert deleted == [first]
    assert len(cluster.status.replica_sets) == 2
