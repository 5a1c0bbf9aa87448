"""How big a canary Rollout's ReplicaSets should be, and scaling them: part of one pass.

:class:`CanaryScaling` is the base of the canary reconciler (:mod:`.canary`): the state a pass
shares (the strategy, the router's weights, the Services' selectors, the position in the
steps) and the ReplicaSet side of it — the desired canary and stable sizes (traffic-routed,
basic, or with ``dynamicStableScale``), whether a step's sizes are reached, and the scaling
of the stable, the canary and the older ReplicaSets with Argo's scale-down delays.

Followed (argoproj/argo-rollouts v1.9.1): ``rollout/canary.go`` (reconcileCanaryReplicaSets,
reconcileCanaryStableReplicaSet, scaleDownOldReplicaSetsForCanary), ``rollout/replicaset.go``
(reconcileNewReplicaSet, removeScaleDownDeadlines, shouldDelayScaleDownOnAbort,
scaleDownDelayHelper, isReplicaSetReferenced) and ``utils/replicaset/canary.go``
(AtDesiredReplicaCountsForCanary); the arithmetic is :mod:`.replicas`'.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from pytest_rollout.engine.deployment import resolve_max_surge, resolve_max_unavailable
from pytest_rollout.engine.reconciler import Reconciler
from pytest_rollout.engine.replicas import (
    CanaryPosition,
    DynamicScale,
    ReplicaCounts,
    ReplicaSetSize,
    basic_canary_replica_counts,
    canary_replicas_or_weight,
    traffic_routed_replica_counts,
)
from pytest_rollout.engine.rollout_model import CanaryStrategy, Rollout
from pytest_rollout.engine.status import (
    Observations,
    PauseReason,
    ReplicaSetState,
    RolloutStatus,
    TrafficWeights,
)


class CanaryScaling(Reconciler):
    """The canary pass's shared state and its ReplicaSet sizes."""

    def __init__(
        self,
        status: RolloutStatus,
        rollout: Rollout,
        canary: CanaryStrategy,
        observations: Observations,
        now: float,
    ) -> None:
        super().__init__(status, rollout, observations, now)
        self.canary = canary
        self.steps = canary.steps
        self.traffic_routed = canary.traffic_routing is not None
        self.dynamic = self.traffic_routed and canary.dynamic_stable_scale
        # Argo decides step completion on the ReplicaSets as they were when it started.
        self.initial_sets = dict(self.sets)
        self.weights = status.weights
        self.stable_selector = status.stable_selector
        self.canary_selector = status.canary_selector
        self.step_run = self.observed(status.step_run)
        self.background_run = self.observed(status.background_run)
        self.position = CanaryPosition(
            steps=self.steps,
            step_index=status.current_step_index,
            stable_hash=status.stable_rs,
            current_hash=status.current_pod_hash,
            aborted=status.abort,
            promote_full=status.promote_full,
        )

    def _abort_scale_down_disabled(self) -> bool:
        return self.canary.abort_scale_down_delay is None

    def _desired_counts(
        self, sets: Mapping[str, ReplicaSetState], weights: TrafficWeights | None
    ) -> ReplicaCounts:
        """The canary's and the stable's sizes; ``weights`` are the router's, which size a
        dynamically scaled stable (Argo reads the previous status's for the stable and the
        pass's own for the canary)."""
        if self.traffic_routed:
            return traffic_routed_replica_counts(
                self.replicas,
                self.position,
                abort_scale_down_disabled=self._abort_scale_down_disabled(),
                dynamic=self._dynamic_scale(sets, weights),
            )
        _, weight = canary_replicas_or_weight(self.position, traffic_routed=False)
        surge = resolve_max_surge(self.canary.max_surge, self.canary.max_unavailable, self.replicas)
        unavailable = resolve_max_unavailable(
            self.canary.max_surge, self.canary.max_unavailable, self.replicas
        )
        new = sets.get(self.desired_hash)
        stable = sets.get(self.prev.stable_rs) if self.prev.stable_rs else None
        others = [
            self._size(rs)
            for pod_hash, rs in sets.items()
            if pod_hash not in (self.desired_hash, self.prev.stable_rs)
        ]
        return basic_canary_replica_counts(
            self.replicas,
            weight,
            surge=surge,
            unavailable=unavailable,
            new=self._size(new) if new is not None else None,
            stable=self._size(stable) if stable is not None else None,
            stable_is_new=stable is not None
            and new is not None
            and stable.pod_hash == new.pod_hash,
            others=others,
        )

    def _dynamic_scale(
        self, sets: Mapping[str, ReplicaSetState], weights: TrafficWeights | None
    ) -> DynamicScale | None:
        if not self.dynamic:
            return None
        new = sets.get(self.desired_hash)
        stable = sets.get(self.prev.stable_rs) if self.prev.stable_rs else None
        return DynamicScale(
            new_available=self.pods(new.pod_hash).available if new is not None else None,
            stable_available=self.pods(stable.pod_hash).available if stable is not None else None,
            canary_weight=weights.canary if weights is not None else None,
        )

    def _size(self, rs: ReplicaSetState) -> ReplicaSetSize:
        return ReplicaSetSize(rs.replicas, self.pods(rs.pod_hash).available)

    def _at_desired_replica_counts(self, weights: TrafficWeights | None) -> bool:
        """``AtDesiredReplicaCountsForCanary`` on the ReplicaSets as the pass found them; a
        dynamically scaled stable is not waited for."""
        sets = self.initial_sets
        counts = self._desired_counts(sets, weights)
        new = sets.get(self.desired_hash)
        if new is None or not (counts.canary == new.replicas == self.pods(new.pod_hash).available):
            return False
        if self.dynamic:
            return True
        stable = sets.get(self.prev.stable_rs) if self.prev.stable_rs else None
        if stable is None or not (
            counts.stable == stable.replicas == self.pods(stable.pod_hash).replicas
        ):
            return False
        if not self.traffic_routed:
            # A basic canary serves from every pod: older ReplicaSets must be drained.
            others = (h for h in sets if h not in (self.desired_hash, self.prev.stable_rs))
            if sum(self.pods(h).available for h in others) != 0:
                return False
        return True

    def _should_delay_scale_down_on_abort(self) -> bool:
        return (
            self.pause.aborted
            and self.stable_rs is not None
            and self.canary.delays_scale_down_on_abort
        )

    def _scale(self, rs: ReplicaSetState, replicas: int) -> bool:
        return self.scale(rs, replicas, keep_deadline=self._should_delay_scale_down_on_abort())

    def _reconcile_replica_sets(self) -> None:
        if any(c.reason == PauseReason.INCONCLUSIVE_ANALYSIS for c in self.prev.pause_conditions):
            return
        self._remove_scale_down_deadlines()
        new, stable = self.new_rs, self.stable_rs
        stable_is_separate = stable is not None and (new is None or stable.pod_hash != new.pod_hash)
        if stable is not None and stable_is_separate:
            # The previous weights: the stable shrinks a pass after traffic left it.
            stable_size = self._desired_counts(self.sets, self.prev.weights).stable
            if self._scale(stable, stable_size):
                return
        if new is not None:
            canary_size = self._desired_counts(self.sets, self.weights).canary
            target = self._new_replica_set_target(new, canary_size)
            if target is None or self._scale(new, target):
                return
        self._scale_down_old_replica_sets()

    def _remove_scale_down_deadlines(self) -> None:
        new, stable = self.new_rs, self.stable_rs
        for rs in (new if not self._should_delay_scale_down_on_abort() else None, stable):
            if rs is not None and rs.scale_down_at is not None:
                self.sets[rs.pod_hash] = replace(rs, scale_down_at=None)

    def _new_replica_set_target(self, new: ReplicaSetState, desired: int) -> int | None:
        """The new ReplicaSet's size; None to leave it alone this pass (abort delay)."""
        aborted_routed = self.pause.aborted and self.traffic_routed and self.stable_rs is not None
        if aborted_routed and self._abort_scale_down_disabled():
            # abortScaleDownDelaySeconds: 0 leaves the canary up (Argo's documented table).
            return new.replicas
        if not self._should_delay_scale_down_on_abort():
            return desired
        if new.scale_down_at is not None:
            if new.scale_down_at > self.now:
                self.wake.append(new.scale_down_at)
                return None
            return 0
        delay = self.canary.abort_scale_down_delay
        stable = self.stable_rs
        # Annotate only once the stable is back at full strength.
        stable_back = stable is not None and self.pods(stable.pod_hash).available == self.replicas
        if delay is not None and stable_back:
            deadline = self.now + delay
            self.sets[new.pod_hash] = replace(new, scale_down_at=deadline)
            self.wake.append(deadline)
        return None

    def _scale_down_old_replica_sets(self) -> bool:
        """``reconcileOtherReplicaSets`` / ``scaleDownOldReplicaSetsForCanary``."""
        current = {self.desired_hash, self.prev.stable_rs}
        old = [rs for rs in self.sets.values() if rs.pod_hash not in current and rs.replicas > 0]
        if not old:
            return False
        scaled = 0
        for rs in sorted(old, key=lambda item: item.revision):
            available = self.pods(rs.pod_hash).available
            if rs.replicas != available:
                scaled += rs.replicas - available
                self._scale(rs, available)
        available_total = sum(self.pods(pod_hash).available for pod_hash in self.sets)
        min_available = self.replicas - resolve_max_unavailable(
            self.canary.max_surge, self.canary.max_unavailable, self.replicas
        )
        budget = available_total - min_available
        if budget <= 0:
            return scaled > 0
        old = [self.sets[rs.pod_hash] for rs in old]
        for rs in sorted(old, key=lambda item: item.revision, reverse=True):
            if self.traffic_routed and self._referenced(rs):
                continue
            if budget <= 0:
                break
            if rs.replicas == 0:
                continue
            if not self.traffic_routed:
                target = rs.replicas - budget if rs.replicas > budget else 0
            elif self.prev.stable_rs == self.prev.current_pod_hash or rs.scale_down_at is not None:
                # A dynamically scaled previous stable has no traffic left: no delay.
                target = 0 if self.dynamic else self._scale_down_delay(rs)
            else:
                target = 0  # an intermediate canary nobody routes to
            if rs.replicas == target:
                continue
            budget -= rs.replicas - target
            scaled += rs.replicas - target
            self._scale(self.sets[rs.pod_hash], target)
        return scaled > 0

    def _scale_down_delay(self, rs: ReplicaSetState) -> int:
        """``scaleDownDelayHelper``: the previous stable stays up for ``scaleDownDelaySeconds``."""
        delay = self.canary.scale_down_delay
        if rs.scale_down_at is None:
            if delay <= 0:
                return 0
            deadline = self.now + delay
            self.sets[rs.pod_hash] = replace(rs, scale_down_at=deadline)
            self.wake.append(deadline)
            return rs.replicas
        if rs.scale_down_at > self.now:
            self.wake.append(rs.scale_down_at)
            return rs.replicas
        return 0

    def _referenced(self, rs: ReplicaSetState) -> bool:
        prev = self.prev
        references = {
            prev.stable_rs,
            prev.current_pod_hash,
            self.stable_selector,
            self.canary_selector,
        }
        if prev.weights is not None:
            references |= {prev.weights.canary_hash, prev.weights.stable_hash}
        return rs.pod_hash in references
