"""``dynamicStableScale``: the stable shrinks as the canary's traffic grows, and an abort waits for
it to grow back.

The replica and weight arithmetic is checked against the cases of Argo Rollouts v1.9.1's own
unit tests (``utils/replicaset/canary_test.go``
TestCalculateReplicaCountsForCanaryTrafficRoutingDynamicScale, ``rollout/trafficrouting_test.go``
TestDynamicScaling*), and whole releases against the sequences of its end-to-end tests
(``test/e2e/canary_test.go`` TestCanaryDynamicStableScale and
TestCanaryDynamicStableScaleRollbackToStable), on the simulated cluster of ``test_canary``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_rollout.engine import canary, strategies
from pytest_rollout.engine.analysis.phases import AnalysisPhase
from pytest_rollout.engine.canary import Decision, Phase
from pytest_rollout.engine.replicas import (
    CanaryPosition,
    DynamicScale,
    ReplicaCounts,
    traffic_routed_replica_counts,
    traffic_weight_to_replicas,
)
from pytest_rollout.engine.rollout_model import Pause, Rollout, SetWeight
from pytest_rollout.engine.traffic_weights import weight_on_abort_or_rollback
from pytest_rollout.errors import ConfigError
from tests.engine.test_canary import BAD_CANARY_STEPS, FakeCluster, act, healthy, make_rollout

DYNAMIC = "dynamicStableScale: true\n"
E2E_STEPS = "- setWeight: 25\n- pause: {}\n- setWeight: 75\n- pause: {}\n"


@dataclass
class Snapshot:
    """The cluster after one reconciliation."""

    t: float
    weight: int
    stable: int
    """Replicas of the ReplicaSet that was stable before the release."""
    canary: int
    stable_available: int
    canary_available: int


@dataclass
class Recorder:
    """Snapshots of a release from the stable ``old`` to the template ``new``."""

    cluster: FakeCluster
    old: str
    new: str
    snapshots: list[Snapshot] = field(default_factory=list)

    def reconcile(self) -> Decision:
        decision = FakeCluster.reconcile(self.cluster)
        pods = self.cluster.observations().pods
        weights = decision.status.weights
        self.snapshots.append(
            Snapshot(
                self.cluster.now,
                weights.canary if weights is not None else 0,
                self.cluster.replicas(self.old),
                self.cluster.replicas(self.new),
                pods[self.old].available if self.old in pods else 0,
                pods[self.new].available if self.new in pods else 0,
            )
        )
        return decision

    def weights(self) -> list[int]:
        """The distinct weights in the order they were set."""
        seen: list[int] = []
        for snapshot in self.snapshots:
            if not seen or seen[-1] != snapshot.weight:
                seen.append(snapshot.weight)
        return seen

    def peak_pods(self) -> int:
        return max(s.stable + s.canary for s in self.snapshots)


def released(steps: str, *, extra: str = DYNAMIC, replicas: int = 4) -> Recorder:
    """A deployed Rollout, released to v2, every reconciliation recorded."""
    cluster = FakeCluster(make_rollout(steps, extra_canary=extra, replicas=replicas))
    cluster.settle()
    assert cluster.status.phase == Phase.HEALTHY
    old = cluster.status.stable_rs
    cluster.release(make_rollout(steps, version="v2", extra_canary=extra, replicas=replicas))
    recorder = Recorder(cluster, old, cluster.rollout.pod_template_hash)
    cluster.reconcile = recorder.reconcile  # type: ignore[method-assign]
    return recorder


# --- validation ----------------------------------------------------------------------------


def test_dynamic_stable_scale_is_read_from_the_canary_strategy() -> None:
    rollout = make_rollout(BAD_CANARY_STEPS, extra_canary=DYNAMIC)
    assert rollout.spec.canary is not None
    assert rollout.spec.canary.dynamic_stable_scale is True
    plain = make_rollout(BAD_CANARY_STEPS)
    assert plain.spec.canary is not None
    assert plain.spec.canary.dynamic_stable_scale is False


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"traffic_routing": False, "extra_canary": DYNAMIC},
            "spec.strategy.canary.dynamicStableScale: Invalid value: true: Canary "
            "dynamicStableScale can only be used with traffic routing",
        ),
        (
            {"extra_canary": DYNAMIC + "scaleDownDelaySeconds: 30\n"},
            "spec.strategy.canary.dynamicStableScale: Invalid value: true: Canary "
            "dynamicStableScale cannot be used with scaleDownDelaySeconds",
        ),
        (
            {"extra_canary": "dynamicStableScale: yes please\n"},
            "spec.strategy.canary.dynamicStableScale in body must be of type boolean",
        ),
    ],
)
def test_argos_validation_of_dynamic_stable_scale(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match="dynamicStableScale") as caught:
        make_rollout(BAD_CANARY_STEPS, **options)
    assert message in str(caught.value)


def test_an_unset_abort_delay_means_no_delay_only_with_dynamic_scaling() -> None:
    def delays(extra: str) -> bool:
        strategy = make_rollout(BAD_CANARY_STEPS, extra_canary=extra).spec.canary
        assert strategy is not None
        return strategy.delays_scale_down_on_abort

    assert delays("") is True
    assert delays(DYNAMIC) is False
    assert delays(DYNAMIC + "abortScaleDownDelaySeconds: 10\n") is True
    assert delays(DYNAMIC + "abortScaleDownDelaySeconds: 0\n") is False


# --- replica and weight arithmetic (Argo's unit cases) ---------------------------------------


def _rs(replicas: int, available: int) -> tuple[int, int] | None:
    return (replicas, available) if replicas > 0 else None


# TestCalculateReplicaCountsForCanaryTrafficRoutingDynamicScale: the Rollout's only step is
# setWeight <first> (then the extra steps), its current step is the first; ReplicaSets that are
# absent are given as 0 replicas; Argo's fixture makes every canary pod available.
@pytest.mark.parametrize(
    (
        "replicas",
        "weights",
        "aborted",
        "canary_weight",
        "canary_rs",
        "stable_rs",
        "expected",
    ),
    [
        (10, (20, 60), True, 60, (6, 6), (4, 4), (6, 8)),
        (10, (20, 60), True, 60, (1, 1), (4, 4), (6, 8)),
        (10, (20, 60), True, 60, (2, 2), (8, 4), (6, 8)),
        (10, (20, 60), True, 60, (0, 0), (0, 0), (6, 10)),
        (10, (10,), False, 10, (0, 0), (0, 0), (1, 9)),
        (10, (20,), False, 10, (0, 0), (0, 0), (2, 9)),
        (10, (20,), True, 20, (0, 0), (0, 0), (2, 10)),
        (10, (20,), True, 10, (0, 0), (0, 0), (1, 10)),
    ],
)
def test_replica_counts_match_argos_dynamic_scale_cases(
    replicas: int,
    weights: tuple[int, ...],
    aborted: bool,
    canary_weight: int,
    canary_rs: tuple[int, int],
    stable_rs: tuple[int, int],
    expected: tuple[int, int],
) -> None:
    position = CanaryPosition(
        tuple(SetWeight(w) for w in weights), None, "stable", "canary", aborted=aborted
    )
    new, stable = _rs(*canary_rs), _rs(*stable_rs)
    dynamic = DynamicScale(
        new_available=new[1] if new else None,
        stable_available=stable[1] if stable else None,
        canary_weight=canary_weight,
    )
    counts = traffic_routed_replica_counts(replicas, position, dynamic=dynamic)
    assert counts == ReplicaCounts(canary=expected[0], stable=expected[1])


# TestDynamicScalingDontIncreaseWeightWhenAborted, ...DecreaseWeightAccordingToStepWeights-
# AvailabilityWhenAborted, ...DecreaseWeightAccordingToStableAvailabilityWhenAborted and
# ...WhenAbortedAndResetService: 5 replicas, aborted, the weight the router gets next.
@pytest.mark.parametrize(
    ("steps", "stable_available", "canary_available", "current", "expected"),
    [
        ((SetWeight(50), Pause()), 4, 0, 0, 0),
        ((SetWeight(50), Pause()), 3, 4, 100, 50),
        ((Pause(),), 1, 4, 100, 80),
        ((SetWeight(50), Pause()), 5, 0, 20, 0),
    ],
)
def test_abort_weights_match_argos_dynamic_scaling_cases(
    steps: tuple[SetWeight | Pause, ...],
    stable_available: int,
    canary_available: int,
    current: int,
    expected: int,
) -> None:
    position = CanaryPosition(steps, 1, "stable", "canary", aborted=True)
    dynamic = DynamicScale(canary_available, stable_available, current)
    assert weight_on_abort_or_rollback(5, position, dynamic) == expected


def test_without_dynamic_scaling_an_abort_takes_the_weight_at_once() -> None:
    position = CanaryPosition((SetWeight(50),), 1, "stable", "canary", aborted=True)
    assert weight_on_abort_or_rollback(5, position, None) == 0


# --- whole releases --------------------------------------------------------------------------


def test_the_stable_shrinks_as_traffic_leaves_it_as_argos_e2e_shows() -> None:
    """TestCanaryDynamicStableScale: 4 replicas, setWeight 25 and 75 with pauses; 3 + 1 pods at
    25%, 1 + 3 at 75%; on abort the canary goes down as the stable comes up, and the canary
    Service returns to the stable only once all four stable pods are available."""
    run = released(E2E_STEPS)
    cluster = run.cluster
    cluster.run_until(lambda c: c.status.phase == Phase.PAUSED)
    cluster.settle(limit=5)
    assert (cluster.replicas(run.old), cluster.replicas(run.new)) == (3, 1)
    cluster.status = canary.promote(cluster.status, cluster.rollout)
    cluster.run_until(lambda c: c.status.current_step_index == 3)
    cluster.settle(limit=5)
    assert (cluster.replicas(run.old), cluster.replicas(run.new)) == (1, 3)
    assert cluster.status.weights is not None
    assert cluster.status.weights.canary == 75

    cluster.pod_spread = 2.0  # the stable's pods become available one after another
    cluster.status = canary.abort(cluster.status)
    cluster.run_until(lambda c: c.replicas(run.new) == 1)
    assert cluster.observations().pods[run.old].available == 3
    assert cluster.decisions[-1].routing.canary_hash == run.new
    cluster.run_until(lambda c: c.replicas(run.new) == 0)
    assert cluster.observations().pods[run.old].available == 4
    assert cluster.replicas(run.old) == 4
    assert cluster.decisions[-1].routing.canary_hash == run.old
    assert cluster.status.phase == Phase.DEGRADED
    # The weight walks back down the steps, each move once the stable can take it.
    assert run.weights()[-3:] == [75, 25, 0]
    for snapshot in run.snapshots:
        share = (100 - snapshot.weight) * 4 // 100
        assert snapshot.stable_available >= share, snapshot


def test_a_dynamic_canary_never_runs_two_full_stacks() -> None:
    """The reference service's steps (5%, pause, analysis, 50%, pause), 4 replicas: at most 6
    pods (1.5 stacks) at once, and the previous stable is gone at promotion; the default canary
    runs 8 (the stable stays at 4 beside a full canary) until scaleDownDelaySeconds passes."""
    dynamic = released(BAD_CANARY_STEPS)
    dynamic.cluster.run_until(healthy)
    dynamic.cluster.settle()
    assert dynamic.peak_pods() == 6
    assert dynamic.cluster.replicas(dynamic.old) == 0
    above = [s.t for s in dynamic.snapshots if s.stable + s.canary > 4]
    # The pass after the promotion scales the previous stable down.
    assert max(above) <= completed_at(dynamic.cluster)

    default = released(BAD_CANARY_STEPS, extra="")
    default.cluster.run_until(healthy)
    default.cluster.settle()
    assert default.peak_pods() == 8
    down = next(
        e.at
        for e in default.cluster.events
        if e.message == f"Scaled down ReplicaSet web-{default.old} (revision 1) from 4 to 0"
    )
    assert down - completed_at(default.cluster) == pytest.approx(30.0, abs=0.01)


def completed_at(cluster: FakeCluster) -> float:
    return next(e.at for e in cluster.events if e.reason == "RolloutCompleted")


def test_the_stable_follows_the_weight_step_by_step() -> None:
    run = released(BAD_CANARY_STEPS)
    run.cluster.run_until(healthy)
    run.cluster.settle()
    # (stable, canary) pod counts as they changed, from the release to the end.
    shapes: list[tuple[int, int]] = []
    for snapshot in run.snapshots:
        shape = (snapshot.stable, snapshot.canary)
        if not shapes or shapes[-1] != shape:
            shapes.append(shape)
    assert shapes == [(4, 0), (4, 1), (4, 2), (2, 2), (2, 4), (0, 4)]
    assert run.weights() == [0, 5, 50, 100, 0]


def test_an_abort_at_the_first_step_takes_the_weight_at_once() -> None:
    """At 5% the stable is still at full size (ceil(4 * 95%) = 4): the abort moves the weight
    to 0 on the next pass, as without dynamic scaling, and the canary goes with its traffic."""
    run = released(BAD_CANARY_STEPS)
    cluster = run.cluster
    cluster.plan = lambda request: [
        (0.0, AnalysisPhase.RUNNING, ""),
        (5.0, AnalysisPhase.FAILED, "failed"),
    ]
    cluster.run_until(lambda c: c.status.abort)
    aborted_at = cluster.now
    decision = cluster.reconcile()
    assert decision.routing.canary_weight == 0
    assert cluster.now == aborted_at
    cluster.settle()
    assert cluster.replicas(run.new) == 0
    prefix = f"Scaled down ReplicaSet web-{run.new}"
    down = [e for e in cluster.events if e.message.startswith(prefix)]
    # No abortScaleDownDelaySeconds written: the canary leaves with its traffic.
    assert [e.at for e in down] == [aborted_at]


def test_an_abort_at_half_waits_for_the_stable_to_come_back() -> None:
    run = released(BAD_CANARY_STEPS)
    cluster = run.cluster
    cluster.run_until(lambda c: c.status.weights is not None and c.status.weights.canary == 50)
    cluster.settle(limit=3)
    assert (cluster.replicas(run.old), cluster.replicas(run.new)) == (2, 2)
    cluster.status = canary.abort(cluster.status)
    aborted_at = cluster.now
    cluster.run_until(lambda c: c.status.weights is not None and c.status.weights.canary == 0)
    # The stable's two new pods take a pod boot (2 s) before the canary's traffic can go back.
    assert cluster.now - aborted_at == pytest.approx(cluster.pod_boot)
    assert run.weights()[-3:] == [50, 5, 0]


def test_rolling_back_to_the_stable_template_keeps_the_canary_until_the_stable_is_full() -> None:
    """TestCanaryDynamicStableScaleRollbackToStable: back on the stable template at 25%, the
    stable scales to 4 while the previous canary keeps its pod, its Service and its 25%; once
    the stable is fully available the weights go to 0 and the canary is scaled down."""
    run = released(E2E_STEPS)
    cluster = run.cluster
    cluster.run_until(lambda c: c.status.phase == Phase.PAUSED)
    cluster.settle(limit=5)
    cluster.pod_boot = 5.0
    cluster.release(make_rollout(E2E_STEPS, extra_canary=DYNAMIC))
    cluster.run_until(lambda c: c.replicas(run.old) == 4)
    cluster.settle(limit=4)
    weights = cluster.status.weights
    assert weights is not None
    assert (weights.canary, weights.canary_hash, weights.stable_hash) == (25, run.new, run.old)
    assert cluster.replicas(run.new) == 1
    assert cluster.decisions[-1].routing.canary_hash == run.new
    cluster.settle()
    weights = cluster.status.weights
    assert weights is not None
    assert (weights.canary, weights.canary_hash) == (0, run.old)
    assert cluster.replicas(run.new) == 0
    assert cluster.decisions[-1].routing.canary_hash == run.old
    assert cluster.status.phase == Phase.HEALTHY


def test_a_full_promotion_moves_traffic_as_the_canary_pods_become_available() -> None:
    run = released(BAD_CANARY_STEPS)
    cluster = run.cluster
    cluster.run_until(lambda c: c.status.phase == Phase.PAUSED)
    cluster.pod_spread = 1.0
    cluster.status = strategies.promote(cluster.status, cluster.rollout, full=True)
    cluster.run_until(healthy)
    cluster.settle()
    # Paused at 5%; then a quarter more with each canary pod available; 0 once it is stable.
    assert run.weights() == [0, 5, 25, 50, 75, 100, 0]
    for snapshot in run.snapshots:
        assert snapshot.canary_available >= traffic_weight_to_replicas(4, snapshot.weight) or (
            snapshot.weight == 0
        )


# --- invariants under arbitrary sequences ---------------------------------------------------

ACTIONS = st.sampled_from(
    ["tick", "tick", "wait", "wait", "promote", "abort", "retry", "full", "release", "back"]
)


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(
    actions=st.lists(ACTIONS, max_size=60),
    verdict=st.sampled_from(list(AnalysisPhase)),
    replicas=st.integers(min_value=1, max_value=7),
)
def test_the_router_never_gives_the_stable_more_than_its_available_pods(
    actions: list[str], verdict: AnalysisPhase, replicas: int
) -> None:
    cluster = FakeCluster(make_rollout(BAD_CANARY_STEPS, replicas=replicas, extra_canary=DYNAMIC))
    cluster.settle()
    cluster.plan = lambda request: [(0.0, AnalysisPhase.RUNNING, ""), (4.0, verdict, "verdict")]
    versions = iter(range(2, 100))

    def release(version: str) -> Rollout:
        return make_rollout(
            BAD_CANARY_STEPS, replicas=replicas, version=version, extra_canary=DYNAMIC
        )

    for action in ["release", *actions]:
        if action == "back":  # the first template again: the stable one, or an earlier one
            act(cluster, "release", lambda: release("v1"))
        else:
            act(cluster, action, lambda: release(f"v{next(versions)}"))
        before = cluster.status.weights
        aborted_before = cluster.status.abort
        pods = cluster.observations().pods
        decision = cluster.reconcile()
        weights = decision.status.weights
        if weights is not None and weights != before:
            # checkReplicasAvailable: a new weight needs the stable's pods for its share.
            stable = pods.get(weights.stable_hash)
            needed = (100 - weights.canary) * replicas // 100
            assert stable is not None, weights
            assert stable.available >= needed, (weights, pods)
        if weights is not None and before is not None and aborted_before:
            # (The pass that finds the failed analysis has set its weight already, as in Argo.)
            assert weights.canary <= before.canary, "an abort never raises the canary's weight"
        for rs in decision.status.replica_sets:
            assert 0 <= rs.replicas <= replicas
        if action == "tick":
            cluster.now += 1.0
