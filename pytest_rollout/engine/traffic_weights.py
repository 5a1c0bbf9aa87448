"""The weight a traffic-routed canary asks of its router, and when it may not move it yet.

Pure arithmetic over what one reconciliation sees; :mod:`.canary` decides which case applies.
What ``dynamicStableScale`` adds lives here: a stable that is smaller than its share of
traffic keeps the weight where it is until its pods are available, on the way down (an abort,
or a Rollout rolled back to its stable template) as on the way up.

Followed (argoproj/argo-rollouts v1.9.1): ``rollout/trafficrouting.go``
(``calculateDesiredWeightOnAbortOrStableRollback``, ``checkReplicasAvailable``, the promote-full
weight of ``reconcileTrafficRouting``) and ``utils/rollout/rolloututil.go``
(``IsDynamicallyRollingBackToStable``).
"""

from __future__ import annotations

from pytest_rollout.engine.replicas import (
    CanaryPosition,
    DynamicScale,
    ReplicaSetSize,
    desired_canary_weight,
)

MAX_WEIGHT = 100


def weight_on_abort_or_rollback(
    replicas: int, position: CanaryPosition, dynamic: DynamicScale | None
) -> int:
    """``calculateDesiredWeightOnAbortOrStableRollback``: 0 at once without dynamic stable
    scaling; with it, the canary keeps its current weight until the stable has the pods for
    the next lower step, then steps down (never up again when stable pods flap)."""
    if (
        dynamic is None
        or dynamic.new_available is None
        or dynamic.stable_available is None
        or replicas == 0
    ):
        return 0
    desired = desired_canary_weight(position, replicas, dynamic)
    stable_share = MAX_WEIGHT * dynamic.stable_available // replicas
    expected = max(0, MAX_WEIGHT - stable_share)
    current = dynamic.canary_weight
    if current is None:
        return max(expected, desired)
    if desired <= 0:
        return min(expected, current)
    if stable_share < MAX_WEIGHT - desired:
        return current  # the stable is still scaling up
    return min(desired, current)


def weight_on_promote_full(replicas: int, new_available: int) -> int:
    """A full promotion with dynamic stable scaling moves traffic as the canary's pods become
    available: their share of ``replicas``."""
    return MAX_WEIGHT * new_available // replicas if replicas else 0


def stable_can_take(stable: ReplicaSetSize | None, stable_weight: int, replicas: int) -> bool:
    """``checkReplicasAvailable``: the stable has the available pods for ``stable_weight``
    (rounded down); otherwise the router keeps its weights this pass."""
    if stable is None:
        return False
    return stable.available >= stable_weight * replicas // MAX_WEIGHT


def rolling_back_from(
    *,
    dynamic_stable_scale: bool,
    fully_promoted: bool,
    weighted_canary_hash: str | None,
    desired_hash: str,
    desired_available: int,
    replicas: int,
) -> str | None:
    """``IsDynamicallyRollingBackToStable``: the canary a Rollout moved back from, while its
    stable (now the desired template again) is below full size; None otherwise.

    ``weighted_canary_hash`` is the canary the router's weights still name.
    """
    if not dynamic_stable_scale or not fully_promoted or weighted_canary_hash is None:
        return None
    if weighted_canary_hash == desired_hash or desired_available >= replicas:
        return None
    return weighted_canary_hash
