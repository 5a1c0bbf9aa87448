"""Deployment RollingUpdate arithmetic: fenceposts, validation and a simulated rollout."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from pytest_rollout.engine.deployment import (
    Action,
    ReplicaSetCounts,
    RollingUpdate,
    next_step,
    validate_rolling_update,
)
from pytest_rollout.engine.intorstr import IntOrPercent
from pytest_rollout.errors import ConfigError

# --- fenceposts ------------------------------------------------------------------------------


def test_defaults_are_25_percent_each() -> None:
    strategy = RollingUpdate()
    assert (strategy.max_surge, strategy.max_unavailable) == ("25%", "25%")
    assert strategy.fenceposts(10) == (3, 2)
    assert strategy.max_total(10) == 13
    assert strategy.min_available(10) == 8


@pytest.mark.parametrize(
    ("surge", "unavailable", "replicas", "expected"),
    [
        ("25%", "25%", 1, (1, 0)),
        ("0%", "25%", 1, (0, 1)),  # both round to 0: unavailable becomes 1
        ("0%", "1%", 2, (0, 1)),
        ("1%", "25%", 2, (1, 0)),
        (1, 0, 3, (1, 0)),
        (0, 5, 3, (0, 5)),
    ],
)
def test_resolve_fenceposts(
    surge: IntOrPercent, unavailable: IntOrPercent, replicas: int, expected: tuple[int, int]
) -> None:
    assert RollingUpdate(surge, unavailable).fenceposts(replicas) == expected


def test_max_unavailable_is_capped_by_replicas_and_zero_without_replicas() -> None:
    strategy = RollingUpdate(0, 5)
    assert strategy.max_unavailable_for(3) == 3
    assert strategy.max_unavailable_for(0) == 0
    assert strategy.min_available(3) == 0


# --- validation, worded as the API server words it ---------------------------------------------

PREFIX = "spec.strategy.rollingUpdate"


@pytest.mark.parametrize(
    ("surge", "unavailable", "message"),
    [
        (0, 0, f"{PREFIX}.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0"),
        (
            "0%",
            "0%",
            f'{PREFIX}.maxUnavailable: Invalid value: "0%": may not be 0 when `maxSurge` is 0',
        ),
        ("0%", 0, f"{PREFIX}.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0"),
        (
            1,
            "110%",
            f'{PREFIX}.maxUnavailable: Invalid value: "110%": must not be greater than 100%',
        ),
        (-1, 1, f"{PREFIX}.maxSurge: Invalid value: -1: must be greater than or equal to 0"),
        (
            "20Percent",
            1,
            f'{PREFIX}.maxSurge: Invalid value: "20Percent": a valid percent string must be a '
            "numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for "
            "validation is '[0-9]+%')",
        ),
        (
            1,
            True,
            f"{PREFIX}.maxUnavailable: Invalid value: True: must be an integer or percentage "
            "(e.g '5%')",
        ),
        (
            "5",
            1,
            f'{PREFIX}.maxSurge: Invalid value: "5": a valid percent string must be a numeric '
            "string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation "
            "is '[0-9]+%')",
        ),
    ],
)
def test_invalid_values_are_rejected_with_kubernetes_wording(
    surge: object, unavailable: object, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_rolling_update(surge, unavailable)
    assert str(caught.value) == message


def test_surge_may_exceed_100_percent() -> None:
    assert RollingUpdate("200%", 0).fenceposts(2) == (4, 0)


def test_from_spec_defaults_and_names_the_manifest_in_errors() -> None:
    assert RollingUpdate.from_spec(None) == RollingUpdate()
    assert RollingUpdate.from_spec({"maxSurge": 1}) == RollingUpdate(1, "25%")
    with pytest.raises(ConfigError, match=r"^app\.yaml:9: spec\.strategy\.rollingUpdate\.maxUn"):
        RollingUpdate.from_spec(
            {"maxSurge": 0, "maxUnavailable": 0}, path="app.yaml:9: spec.strategy.rollingUpdate"
        )
    with pytest.raises(ConfigError, match=r"unknown field 'maxSurg'; allowed: maxSurge, maxUn"):
        RollingUpdate.from_spec({"maxSurg": 1})


def test_replica_set_counts_are_consistent() -> None:
    with pytest.raises(ValueError, match="available <= replicas"):
        ReplicaSetCounts(replicas=1, available=2)


# --- single steps ----------------------------------------------------------------------------


def test_new_replica_set_scales_up_by_the_surge_first() -> None:
    step = next_step(10, RollingUpdate(), ReplicaSetCounts(0, 0), [ReplicaSetCounts(10, 10)])
    assert step.action is Action.SCALE_UP_NEW
    assert (step.new_replicas, step.old_replicas) == (3, (10,))


def test_old_replica_sets_scale_down_to_min_available_only() -> None:
    # 13 pods, 3 new not yet available: old may only drop by maxUnavailable (2).
    step = next_step(10, RollingUpdate(), ReplicaSetCounts(3, 0), [ReplicaSetCounts(10, 10)])
    assert step.action is Action.SCALE_DOWN_OLD
    assert step.old_replicas == (8,)


def test_unavailable_new_pods_block_scale_down() -> None:
    # maxSurge 1, maxUnavailable 0: the surge pod must be available before an old one goes.
    strategy = RollingUpdate(1, 0)
    waiting = next_step(3, strategy, ReplicaSetCounts(1, 0), [ReplicaSetCounts(3, 3)])
    assert waiting.action is Action.WAIT
    ready = next_step(3, strategy, ReplicaSetCounts(1, 1), [ReplicaSetCounts(3, 3)])
    assert ready.action is Action.SCALE_DOWN_OLD
    assert ready.old_replicas == (2,)


def test_unhealthy_old_pods_are_cleaned_up_first_and_oldest_set_first() -> None:
    strategy = RollingUpdate(0, 1)
    step = next_step(
        4,
        strategy,
        ReplicaSetCounts(0, 0),
        [ReplicaSetCounts(2, 2), ReplicaSetCounts(2, 1)],
    )
    # One unhealthy pod in the second set goes at no cost; then availability (3) is at
    # minAvailable (3), so nothing else may go.
    assert step.action is Action.SCALE_DOWN_OLD
    assert step.old_replicas == (2, 1)


def test_a_new_replica_set_above_desired_is_scaled_down() -> None:
    step = next_step(2, RollingUpdate(), ReplicaSetCounts(5, 5), [])
    assert step.action is Action.SCALE_DOWN_NEW
    assert step.new_replicas == 2


def test_done_needs_every_new_pod_available() -> None:
    assert next_step(3, RollingUpdate(), ReplicaSetCounts(3, 2), []).action is Action.WAIT
    assert next_step(3, RollingUpdate(), ReplicaSetCounts(3, 3), []).action is Action.DONE


@pytest.mark.parametrize(
    ("surge", "unavailable", "expected"),
    [
        # The orders given in deployment_util.go's ResolveFenceposts comment, 2 desired.
        ("0%", "1%", ["old-1", "new+1", "old-1", "new+1"]),
        ("1%", "25%", ["new+1", "old-1", "new+1", "old-1"]),
        ("1%", "0%", ["new+1", "old-1", "new+1", "old-1"]),
    ],
)
def test_scaling_order_matches_kubernetes(
    surge: IntOrPercent, unavailable: IntOrPercent, expected: list[str]
) -> None:
    rollout = _Rollout(2, RollingUpdate(surge, unavailable), old=[[0, 0]])
    trace: list[str] = []
    for _ in range(20):
        before_new, before_old = len(rollout.new), sum(map(len, rollout.old))
        action = rollout.sync_once(delay=0)
        if action is Action.DONE:
            break
        if action is Action.WAIT:
            rollout.tick()
            continue
        new_delta = len(rollout.new) - before_new
        old_delta = sum(map(len, rollout.old)) - before_old
        trace.append(f"new{new_delta:+d}" if new_delta else f"old{old_delta:+d}")
        rollout.tick()
    assert trace == expected


# --- the property: bounds hold for any strategy and any pod start-up times ---------------------


@dataclass
class _Rollout:
    """Pods as ticks left until they are available (0: available)."""

    replicas: int
    strategy: RollingUpdate
    old: list[list[int]]
    new: list[int] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)

    def counts(self) -> tuple[ReplicaSetCounts, list[ReplicaSetCounts]]:
        def of(pods: list[int]) -> ReplicaSetCounts:
            return ReplicaSetCounts(len(pods), sum(1 for left in pods if left == 0))

        return of(self.new), [of(pods) for pods in self.old]

    def available(self) -> int:
        return sum(1 for pods in (self.new, *self.old) for left in pods if left == 0)

    def total(self) -> int:
        return len(self.new) + sum(map(len, self.old))

    def sync_once(self, delay: int | None = None, delays: st.DataObject | None = None) -> Action:
        new, old = self.counts()
        step = next_step(self.replicas, self.strategy, new, old)
        self.actions.append(step.action)
        if step.action is Action.SCALE_UP_NEW:
            for _ in range(step.new_replicas - len(self.new)):
                start = delay if delays is None else delays.draw(st.integers(0, 4))
                assert start is not None
                self.new.append(start)
        elif step.action is Action.SCALE_DOWN_NEW:
            del self.new[step.new_replicas :]
        elif step.action is Action.SCALE_DOWN_OLD:
            for pods, size in zip(self.old, step.old_replicas, strict=True):
                # The ReplicaSet controller deletes not-yet-available pods first.
                pods.sort(reverse=True)
                del pods[: len(pods) - size]
        return step.action

    def tick(self) -> None:
        for pods in (self.new, *self.old):
            pods[:] = [max(0, left - 1) for left in pods]


int_or_percent = st.one_of(
    st.integers(min_value=0, max_value=6),
    st.integers(min_value=0, max_value=100).map(lambda share: f"{share}%"),
)


@settings(max_examples=300, deadline=None)
@given(
    replicas=st.integers(min_value=0, max_value=12),
    surge=int_or_percent,
    unavailable=int_or_percent,
    old_sets=st.integers(min_value=1, max_value=3),
    data=st.data(),
)
def test_rollout_stays_within_surge_and_availability_and_completes(
    replicas: int,
    surge: IntOrPercent,
    unavailable: IntOrPercent,
    old_sets: int,
    data: st.DataObject,
) -> None:
    assume(not (_written(surge) == 0 and _written(unavailable) == 0))
    strategy = RollingUpdate(surge, unavailable)
    max_total = strategy.max_total(replicas)
    min_available = strategy.min_available(replicas)

    # The old pods split over up to three older ReplicaSets (an interrupted rollout rolled
    # over); up to maxUnavailable of them still starting, as a running Deployment may be.
    sizes = [0] * old_sets
    for _ in range(replicas):
        sizes[data.draw(st.integers(0, old_sets - 1))] += 1
    starting = data.draw(st.integers(0, replicas - min_available))
    old = [[0] * size for size in sizes]
    flat = [(i, j) for i, pods in enumerate(old) for j in range(len(pods))]
    for i, j in flat[:starting]:
        old[i][j] = data.draw(st.integers(1, 4))
    rollout = _Rollout(replicas, strategy, old)

    def check(moment: str) -> None:
        assert rollout.total() <= max_total, (
            f"{moment}: {rollout.total()} pods > replicas {replicas} + surge "
            f"{strategy.max_surge_for(replicas)}; actions {rollout.actions}"
        )
        assert rollout.available() >= min_available, (
            f"{moment}: {rollout.available()} available < replicas {replicas} - unavailable "
            f"{strategy.max_unavailable_for(replicas)}; actions {rollout.actions}"
        )

    check("start")
    for tick in range(500):
        for _ in range(4 * max(replicas, 1) + 4):
            action = rollout.sync_once(delays=data)
            check(f"tick {tick}")
            if action in (Action.WAIT, Action.DONE):
                break
        else:
            pytest.fail(f"controller never settled within a tick: {rollout.actions[-10:]}")
        if action is Action.DONE:
            break
        rollout.tick()
        check(f"after tick {tick}")
    else:
        pytest.fail(f"rollout did not complete in 500 ticks: {rollout.counts()}")

    assert len(rollout.new) == replicas
    assert rollout.available() == replicas
    assert all(not pods for pods in rollout.old)


def _written(value: IntOrPercent) -> int:
    return int(value[:-1]) if isinstance(value, str) else value
