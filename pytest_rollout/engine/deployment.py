"""Deployment RollingUpdate arithmetic with Kubernetes semantics (pure: no processes, no clock).

Followed from kubernetes/kubernetes:

- ``pkg/controller/deployment/util/deployment_util.go``: ``ResolveFenceposts``, ``MaxSurge``,
  ``MaxUnavailable``, ``NewRSNewReplicas``;
- ``pkg/controller/deployment/rolling.go``: ``rolloutRolling``, ``reconcileNewReplicaSet``,
  ``reconcileOldReplicaSets``, ``cleanupUnhealthyReplicas``,
  ``scaleDownOldReplicaSetsForRollingUpdate``;
- ``pkg/apis/apps/validation/validation.go``: ``ValidateRollingUpdateDeployment`` (error wording);
- ``apimachinery/pkg/util/intstr``: ``GetScaledValueFromIntOrPercent`` (surge rounds up,
  unavailable rounds down).

Sizes are ReplicaSet ``spec.replicas``; as in Kubernetes, pods that are already terminating are
not counted against ``replicas + maxSurge``. "Available" means Ready for ``minReadySeconds``;
deciding that is the caller's job.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pytest_rollout.engine.intorstr import IntOrPercent, scaled_value, validated, written_value
from pytest_rollout.errors import ConfigError

DEFAULT_MAX_SURGE: IntOrPercent = "25%"
DEFAULT_MAX_UNAVAILABLE: IntOrPercent = "25%"
DEFAULT_PATH = "spec.strategy.rollingUpdate"


def _shown(value: object) -> str:
    # field.Invalid renders strings quoted and numbers bare.
    return f'"{value}"' if isinstance(value, str) else str(value)


def _int_or_percent(value: object, path: str) -> IntOrPercent:
    return validated(
        value, lambda reason: ConfigError(f"{path}: Invalid value: {_shown(value)}: {reason}")
    )


def validate_rolling_update(
    max_surge: object, max_unavailable: object, *, path: str = DEFAULT_PATH
) -> tuple[IntOrPercent, IntOrPercent]:
    """The values as ``(maxSurge, maxUnavailable)``, or the API server's rejection as a
    :class:`ConfigError` (same field path and wording)."""
    unavailable = _int_or_percent(max_unavailable, f"{path}.maxUnavailable")
    surge = _int_or_percent(max_surge, f"{path}.maxSurge")
    if written_value(unavailable) == 0 and written_value(surge) == 0:
        raise ConfigError(
            f"{path}.maxUnavailable: Invalid value: {_shown(unavailable)}: "
            "may not be 0 when `maxSurge` is 0"
        )
    if isinstance(unavailable, str) and written_value(unavailable) > 100:
        raise ConfigError(
            f"{path}.maxUnavailable: Invalid value: {_shown(unavailable)}: "
            "must not be greater than 100%"
        )
    return surge, unavailable


def resolve_fenceposts(
    max_surge: IntOrPercent, max_unavailable: IntOrPercent, replicas: int
) -> tuple[int, int]:
    """``ResolveFenceposts``: (surge, unavailable) for ``replicas`` desired pods.

    Surge rounds up and unavailable rounds down; when both come out 0 (possible only through
    rounding) unavailable becomes 1, so the rollout can always make progress. Argo Rollouts
    resolves a Rollout's ``maxSurge`` / ``maxUnavailable`` the same way.
    """
    surge = scaled_value(max_surge, replicas, round_up=True)
    unavailable = scaled_value(max_unavailable, replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def resolve_max_surge(surge: IntOrPercent, unavailable: IntOrPercent, replicas: int) -> int:
    """``MaxSurge``: the pods above ``replicas`` an update may add."""
    return resolve_fenceposts(surge, unavailable, replicas)[0]


def resolve_max_unavailable(surge: IntOrPercent, unavailable: IntOrPercent, replicas: int) -> int:
    """``MaxUnavailable``: 0 for no replicas, never more than ``replicas``."""
    if replicas == 0:
        return 0
    return min(resolve_fenceposts(surge, unavailable, replicas)[1], replicas)


@dataclass(frozen=True)
class RollingUpdate:
    """A Deployment's ``spec.strategy.rollingUpdate``, validated; defaults 25% / 25%."""

    max_surge: IntOrPercent = DEFAULT_MAX_SURGE
    max_unavailable: IntOrPercent = DEFAULT_MAX_UNAVAILABLE

    def __post_init__(self) -> None:
        validate_rolling_update(self.max_surge, self.max_unavailable)

    @classmethod
    def from_spec(
        cls, spec: Mapping[str, object] | None, *, path: str = DEFAULT_PATH
    ) -> RollingUpdate:
        """From the ``rollingUpdate`` mapping of a manifest (``None``: all defaults).

        ``path`` prefixes error messages, e.g. ``"app.yaml:12: spec.strategy.rollingUpdate"``.
        """
        if spec is None:
            return cls()
        unknown = sorted(set(spec) - {"maxSurge", "maxUnavailable"})
        if unknown:
            raise ConfigError(
                f"{path}: unknown field {unknown[0]!r}; allowed: maxSurge, maxUnavailable"
            )
        surge, unavailable = validate_rolling_update(
            spec.get("maxSurge", DEFAULT_MAX_SURGE),
            spec.get("maxUnavailable", DEFAULT_MAX_UNAVAILABLE),
            path=path,
        )
        return cls(surge, unavailable)

    def fenceposts(self, replicas: int) -> tuple[int, int]:
        """(surge, unavailable) for ``replicas`` desired pods: :func:`resolve_fenceposts`."""
        return resolve_fenceposts(self.max_surge, self.max_unavailable, replicas)

    def max_surge_for(self, replicas: int) -> int:
        """How many pods above ``replicas`` may exist during the rollout."""
        return resolve_max_surge(self.max_surge, self.max_unavailable, replicas)

    def max_unavailable_for(self, replicas: int) -> int:
        """``MaxUnavailable``: 0 for 0 replicas, never more than ``replicas``."""
        return resolve_max_unavailable(self.max_surge, self.max_unavailable, replicas)

    def min_available(self, replicas: int) -> int:
        """The fewest available pods the rollout may leave: ``replicas - maxUnavailable``."""
        return replicas - self.max_unavailable_for(replicas)

    def max_total(self, replicas: int) -> int:
        """The most pods (all ReplicaSets together) the rollout may create."""
        return replicas + self.max_surge_for(replicas)


@dataclass(frozen=True)
class ReplicaSetCounts:
    """A ReplicaSet as the deployment controller sees it: size and available pods."""

    replicas: int
    available: int

    def __post_init__(self) -> None:
        if not 0 <= self.available <= self.replicas:
            raise ValueError(
                f"need 0 <= available <= replicas, got available={self.available} "
                f"replicas={self.replicas}"
            )


class Action(enum.Enum):
    """What :func:`next_step` decided."""

    SCALE_UP_NEW = "scale up new ReplicaSet"
    SCALE_DOWN_NEW = "scale down new ReplicaSet"
    SCALE_DOWN_OLD = "scale down old ReplicaSets"
    WAIT = "wait for pods to become available"
    DONE = "rollout complete"


@dataclass(frozen=True)
class RollingStep:
    """Target sizes after one controller sync; ``old_replicas`` in the order given."""

    action: Action
    new_replicas: int
    old_replicas: tuple[int, ...]


def new_replica_set_target(
    replicas: int, strategy: RollingUpdate, new: ReplicaSetCounts, total: int
) -> int:
    """``NewRSNewReplicas``: the new ReplicaSet's size given ``total`` pods of all sets."""
    max_total = strategy.max_total(replicas)
    if total >= max_total:
        return new.replicas
    return new.replicas + min(max_total - total, replicas - new.replicas)


def next_step(
    replicas: int,
    strategy: RollingUpdate,
    new: ReplicaSetCounts,
    old: Sequence[ReplicaSetCounts],
) -> RollingStep:
    """One sync of ``rolloutRolling``: scale the new set up if it can, else old sets down.

    ``old`` lists the old ReplicaSets oldest first (Kubernetes scales down by creation time).
    When an old set shrinks, the caller must remove its unavailable pods first, as the
    ReplicaSet controller ranks not-ready pods for deletion before ready ones.
    """
    if replicas < 0:
        raise ValueError(f"replicas must be >= 0, got {replicas}")
    old_sizes = tuple(rs.replicas for rs in old)
    total = new.replicas + sum(old_sizes)

    if new.replicas > replicas:
        return RollingStep(Action.SCALE_DOWN_NEW, replicas, old_sizes)
    if new.replicas < replicas:
        target = new_replica_set_target(replicas, strategy, new, total)
        if target != new.replicas:
            return RollingStep(Action.SCALE_UP_NEW, target, old_sizes)

    scaled = _scale_down_old(replicas, strategy, new, old, total)
    if scaled != old_sizes:
        return RollingStep(Action.SCALE_DOWN_OLD, new.replicas, scaled)
    done = new.replicas == replicas and not any(old_sizes) and new.available == replicas
    return RollingStep(Action.DONE if done else Action.WAIT, new.replicas, old_sizes)


def _scale_down_old(
    replicas: int,
    strategy: RollingUpdate,
    new: ReplicaSetCounts,
    old: Sequence[ReplicaSetCounts],
    total: int,
) -> tuple[int, ...]:
    sizes = [rs.replicas for rs in old]
    if not any(sizes):
        return tuple(sizes)
    min_available = strategy.min_available(replicas)
    # New pods that are not available yet must not let old ones go: they may never come up.
    max_scaled_down = total - min_available - (new.replicas - new.available)
    if max_scaled_down <= 0:
        return tuple(sizes)

    # cleanupUnhealthyReplicas: unavailable old pods go first; removing them costs nothing.
    cleaned = 0
    for index, rs in enumerate(old):
        if cleaned >= max_scaled_down:
            break
        unhealthy = rs.replicas - rs.available
        if rs.replicas == 0 or unhealthy == 0:
            continue
        count = min(max_scaled_down - cleaned, unhealthy)
        sizes[index] -= count
        cleaned += count

    # scaleDownOldReplicaSetsForRollingUpdate: then available ones, down to minAvailable.
    available = new.available + sum(rs.available for rs in old)
    budget = available - min_available
    removed = 0
    for index in range(len(sizes)):
        if removed >= budget:
            break
        if sizes[index] == 0:
            continue
        count = min(sizes[index], budget - removed)
        sizes[index] -= count
        removed += count
    return tuple(sizes)
