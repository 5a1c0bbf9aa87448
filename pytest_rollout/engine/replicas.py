"""Replica math of an Argo Rollouts canary (pure: no clock, no processes).

Followed (argoproj/argo-rollouts): ``utils/replicaset/canary.go`` —
``CalculateReplicaCountsForTrafficRoutedCanary`` (canary = ``ceil(replicas * weight / 100)``;
the stable stays at full size, or with ``dynamicStableScale`` follows the larger of its desired
and its actual traffic share), ``GetCanaryReplicasOrWeight``, ``GetDesiredCanaryWeight``,
``GetCurrentSetWeight``, ``UseSetCanaryScale``, ``GetCurrentCanaryStep``,
``CalculateReplicaCountsForBasicCanary`` with ``approximateWeightedCanaryStableReplicaCounts``,
``calculateScaleDownReplicaCount``, ``adjustReplicaWithinLimits`` and
``GetReplicasForScaleDown``; ``rollout/replicaset.go`` (``reconcileNewReplicaSet``: an aborted
canary is scaled down once its scale-down deadline has passed). ``MaxSurge``,
``MaxUnavailable`` and ``resolveFenceposts`` (``utils/replicaset/replicaset.go``) are the
Deployment's: :mod:`.deployment`.
``minPodsPerReplicaSet`` is outside the supported subset.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from pytest_rollout.engine.rollout_model import CanaryStep, SetCanaryScale, SetWeight


@dataclass(frozen=True)
class CanaryPosition:
    """What the replica math reads from a Rollout's status."""

    steps: tuple[CanaryStep, ...]
    step_index: int | None
    stable_hash: str
    current_hash: str
    aborted: bool = False
    promote_full: bool = False


@dataclass(frozen=True)
class DynamicScale:
    """What ``dynamicStableScale`` reads beyond the status: the available pods of the current
    template's and the stable ReplicaSet (None when it does not exist) and the canary's share
    of traffic as the router has it (None before any weight was set)."""

    new_available: int | None
    stable_available: int | None
    canary_weight: int | None


@dataclass(frozen=True)
class ReplicaCounts:
    canary: int
    stable: int


@dataclass(frozen=True)
class ReplicaSetSize:
    """A ReplicaSet as the math sees it: ``spec.replicas`` and available pods."""

    replicas: int
    available: int


def current_step(
    steps: Sequence[CanaryStep], step_index: int | None
) -> tuple[CanaryStep | None, int | None]:
    """``GetCurrentCanaryStep``: (step, index); the index is 0 when unset and the step is None
    once every step has run. Both are None when there are no steps."""
    if not steps:
        return None, None
    index = 0 if step_index is None else step_index
    if index >= len(steps):
        return None, index
    return steps[index], index


def current_set_weight(position: CanaryPosition) -> int:
    """``GetCurrentSetWeight``: 0 when aborted, 100 past the last step, else the last
    ``setWeight`` at or before the current step (0 if there is none)."""
    if position.aborted:
        return 0
    step, index = current_step(position.steps, position.step_index)
    if step is None or index is None:
        return 100
    for earlier in reversed(position.steps[: index + 1]):
        if isinstance(earlier, SetWeight):
            return earlier.weight
    return 0


def desired_canary_weight(
    position: CanaryPosition, replicas: int, dynamic: DynamicScale | None = None
) -> int:
    """``GetDesiredCanaryWeight``: :func:`current_set_weight`, except for an aborted Rollout
    with dynamic stable scaling, which walks the ``setWeight`` steps back down: the largest one
    whose canary size is below what the canary still needs (the pods the stable lacks, or the
    canary's available pods if more), 0 when there is none. The stable grows by one step at a
    time instead of to full size at once."""
    if (
        position.aborted
        and dynamic is not None
        and dynamic.new_available is not None
        and dynamic.stable_available is not None
    ):
        needed = max(replicas - dynamic.stable_available, dynamic.new_available)
        for step in reversed(position.steps):
            weight = step.weight if isinstance(step, SetWeight) else None
            if weight is not None and traffic_weight_to_replicas(replicas, weight) < needed:
                return weight
        return 0
    return current_set_weight(position)


def active_set_canary_scale(
    position: CanaryPosition, *, traffic_routed: bool, abort_scale_down_disabled: bool
) -> SetCanaryScale | None:
    """``UseSetCanaryScale``: the ``setCanaryScale`` in force at the current step, if any.

    It needs traffic routing; an abort drops it unless ``abortScaleDownDelaySeconds: 0`` asked
    to keep the canary up; a later ``matchTrafficWeight: true`` ends it.
    """
    if not traffic_routed:
        return None
    if position.aborted and not abort_scale_down_disabled:
        return None
    step, index = current_step(position.steps, position.step_index)
    if step is None or index is None:
        return None
    for earlier in reversed(position.steps[: index + 1]):
        if isinstance(earlier, SetCanaryScale):
            return None if earlier.match_traffic_weight else earlier
    return None


def canary_replicas_or_weight(
    position: CanaryPosition,
    *,
    traffic_routed: bool,
    abort_scale_down_disabled: bool = False,
    replicas: int = 0,
    dynamic: DynamicScale | None = None,
) -> tuple[int | None, int]:
    """``GetCanaryReplicasOrWeight``: an explicit canary size, or the weight to size it by
    (``dynamic``: the Rollout scales its stable dynamically, see :func:`desired_canary_weight`)."""
    fully_promoted = position.current_hash == position.stable_hash
    if position.promote_full or not position.stable_hash or fully_promoted:
        return None, 100
    scale = active_set_canary_scale(
        position,
        traffic_routed=traffic_routed,
        abort_scale_down_disabled=abort_scale_down_disabled,
    )
    if scale is not None:
        if scale.replicas is not None:
            return scale.replicas, 0
        if scale.weight is not None:
            return None, scale.weight
    return None, desired_canary_weight(position, replicas, dynamic)


def traffic_weight_to_replicas(replicas: int, weight: int) -> int:
    """``trafficWeightToReplicas``: ``ceil(replicas * weight / 100)`` — at least one pod for any
    weight above 0."""
    return -(-(replicas * weight) // 100)


def traffic_routed_replica_counts(
    replicas: int,
    position: CanaryPosition,
    *,
    abort_scale_down_disabled: bool = False,
    dynamic: DynamicScale | None = None,
) -> ReplicaCounts:
    """``CalculateReplicaCountsForTrafficRoutedCanary``: the canary is sized by
    ``setCanaryScale`` or the weight.

    Without dynamic stable scaling (``dynamic`` None) the stable stays at ``replicas``. With
    it, the stable is sized by the larger of its desired share (100 - the weight) and the share
    the router gives it now, so that it shrinks only after traffic left it and grows before
    traffic comes back; an aborted canary keeps the pods its current share needs.
    """
    explicit, weight = canary_replicas_or_weight(
        position,
        traffic_routed=True,
        abort_scale_down_disabled=abort_scale_down_disabled,
        replicas=replicas,
        dynamic=dynamic,
    )
    canary = explicit if explicit is not None else traffic_weight_to_replicas(replicas, weight)
    if dynamic is None:
        return ReplicaCounts(canary=canary, stable=replicas)
    stable = traffic_weight_to_replicas(replicas, 100 - weight)
    if dynamic.canary_weight is not None:
        stable = max(stable, traffic_weight_to_replicas(replicas, 100 - dynamic.canary_weight))
        if position.aborted:
            canary = max(traffic_weight_to_replicas(replicas, dynamic.canary_weight), canary)
    return ReplicaCounts(canary=canary, stable=stable)


def aborted_canary_replicas(current: int, *, scale_down_at: float | None, now: float) -> int:
    """An aborted, traffic-routed canary keeps its pods until its scale-down deadline passes.

    ``scale_down_at`` None means no deadline was set: either ``abortScaleDownDelaySeconds: 0``
    (keep the canary up) or the stable is not yet fully available again.
    """
    if scale_down_at is None or scale_down_at > now:
        return current
    return 0


# --- the basic (replica-weighted) canary ---------------------------------------------------


def _floor_ceiling_tied(weight: int, total: int) -> bool:
    # Float arithmetic on purpose: Go's float64 decides the ties.
    fraction = math.modf(float(total) * (float(weight) / 100))[0]
    return fraction == 0.5


def _weight_delta(weight: int, canary: int, total: int) -> float:
    return abs(float(canary * 100) / float(total) - float(weight))


def approximate_weighted_counts(spec_replicas: int, weight: int, surge: int) -> tuple[int, int]:
    """``approximateWeightedCanaryStableReplicaCounts``: (canary, stable) closest to ``weight``,
    summing to ``replicas`` or, with surge allowed, ``replicas + 1``; a weight of 1-99 with two
    or more pods never yields 0 for either side."""
    if spec_replicas == 0:
        return 0, 0
    ceil_count = -(-(spec_replicas * weight) // 100)
    floor_count = (spec_replicas * weight) // 100
    tied = _floor_ceiling_tied(weight, spec_replicas)
    zero_allowed = weight in (0, 100) or (spec_replicas == 1 and surge == 0)
    options: list[tuple[int, int]] = []
    if ceil_count < spec_replicas or zero_allowed:
        options.append((ceil_count, spec_replicas))
    if not tied and (floor_count != 0 or zero_allowed):
        options.append((floor_count, spec_replicas))
    if surge > 0:
        options.append((ceil_count, spec_replicas + 1))
        if not _floor_ceiling_tied(weight, spec_replicas + 1) and (
            floor_count != 0 or zero_allowed
        ):
            options.append((floor_count, spec_replicas + 1))
    if not options:
        return 0, spec_replicas
    best = options[0]
    best_delta = _weight_delta(weight, *best)
    for option in options[1:]:
        delta = _weight_delta(weight, *option)
        if delta < best_delta:
            best, best_delta = option, delta
    return best[0], best[1] - best[0]


def _replicas_for_scale_down(rs: ReplicaSetSize | None, ignore_availability: bool) -> int:
    if rs is None:
        return 0
    if rs.replicas < rs.available:
        return rs.replicas
    return rs.replicas if ignore_availability else rs.available


def _scale_down_count(
    drain: ReplicaSetSize | None, desired: int, scale_down: int, count: int
) -> int:
    if drain is not None and drain.replicas > desired:
        return max(desired, drain.replicas - scale_down)
    return count


def _adjust_within_limits(
    drain: ReplicaSetSize | None,
    adjust: ReplicaSetSize | None,
    drain_count: int,
    adjust_count: int,
    max_allowed: int,
    min_available: int,
) -> tuple[int, int]:
    total_available = 0
    over_limit = max(0, adjust_count + drain_count - max_allowed)
    if drain is not None:
        total_available += min(drain.available, drain_count)
    if adjust is not None:
        adjust_count -= over_limit
        total_available += min(adjust.available, adjust_count)
        extra_available = max(0, adjust.available - adjust_count)
        still_needed = max(0, min_available - total_available)
        adjust_count += min(extra_available, still_needed)
        over_limit = max(0, adjust_count + drain_count - max_allowed)
        drain_count -= over_limit
    return drain_count, adjust_count


def basic_canary_replica_counts(
    spec_replicas: int,
    weight: int,
    *,
    surge: int,
    unavailable: int,
    new: ReplicaSetSize | None,
    stable: ReplicaSetSize | None,
    stable_is_new: bool,
    others: Sequence[ReplicaSetSize],
) -> ReplicaCounts:
    """``CalculateReplicaCountsForBasicCanary``: weights approximated by pod counts, moved
    within ``maxSurge`` / ``maxUnavailable``; older ReplicaSets are drained first.

    ``surge`` and ``unavailable`` are resolved fenceposts
    (:func:`.deployment.resolve_max_surge`, :func:`.deployment.resolve_max_unavailable`).
    ``stable_is_new`` marks a stable that is the new ReplicaSet itself (no update in progress).
    """
    desired_new, desired_stable = approximate_weighted_counts(spec_replicas, weight, surge)
    new_count = new.replicas if new is not None else 0
    stable_count = 0
    scale_stable = stable is not None and not stable_is_new
    if scale_stable and stable is not None:
        stable_count = stable.replicas
    else:
        desired_new, desired_stable = spec_replicas, 0
    max_allowed = spec_replicas + surge
    current_total = sum(rs.replicas for rs in others) + (new.replicas if new else 0)
    if scale_stable and stable is not None:
        current_total += stable.replicas
    scale_up = max_allowed - current_total

    if scale_stable and stable is not None and stable.replicas < desired_stable and scale_up > 0:
        if stable.replicas + scale_up < desired_stable:
            stable_count = stable.replicas + scale_up
            scale_up = 0
        else:
            stable_count = desired_stable
            scale_up -= desired_stable - stable.replicas
    if new is not None and new.replicas < desired_new and scale_up > 0:
        new_count = min(new.replicas + scale_up, desired_new)

    if sum(rs.replicas for rs in others) > 0:
        return ReplicaCounts(canary=new_count, stable=stable_count)

    min_available = spec_replicas - unavailable
    increasing = new is None or desired_new >= new.replicas
    to_scale_down = _replicas_for_scale_down(new, not increasing) + _replicas_for_scale_down(
        stable, increasing
    )
    if to_scale_down <= min_available:
        return ReplicaCounts(canary=new_count, stable=stable_count)
    scale_down = to_scale_down - min_available
    if not increasing:
        new_count = _scale_down_count(new, desired_new, scale_down, new_count)
        new_count, stable_count = _adjust_within_limits(
            new, stable, new_count, stable_count, max_allowed, min_available
        )
    elif scale_stable:
        stable_count = _scale_down_count(stable, desired_stable, scale_down, stable_count)
        stable_count, new_count = _adjust_within_limits(
            stable, new, stable_count, new_count, max_allowed, min_available
        )
    return ReplicaCounts(canary=new_count, stable=stable_count)
