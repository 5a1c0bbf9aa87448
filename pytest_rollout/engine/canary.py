"""The canary controller of Argo Rollouts as a pure state machine.

:func:`step` is one reconciliation: it reads the last :class:`RolloutStatus`, the parsed
:class:`~pytest_rollout.engine.rollout_model.Rollout`, what was observed (pods per ReplicaSet,
AnalysisRun phases) and the time, and returns a :class:`Decision`: the new status (desired
ReplicaSet sizes, service selectors, traffic weight), the AnalysisRuns to start and terminate,
and the Events to record. It does no I/O; the engine applies the decision and calls it again
when something changes, when ``Decision.changed`` is true, or at ``Decision.wake_at``.
Commands (:func:`promote`, :func:`promote_full`, :func:`abort`, :func:`retry`) patch the status
exactly as ``kubectl argo rollouts`` does; the next :func:`step` acts on them.

With ``trafficRouting`` the router's weight is exact and the canary is sized by it; without it
(the basic canary) the weight is approximated by replica counts, and traffic follows the
pods: a Service selecting every pod of the Rollout spreads requests over both ReplicaSets.
With ``dynamicStableScale`` the stable is sized by its share of traffic too, and the weight
waits for the stable's pods on the way back (:mod:`.traffic_weights`).

Followed (argoproj/argo-rollouts): ``rollout/canary.go`` (rolloutCanary, reconcileCanaryPause,
completedCurrentCanaryStep, syncRolloutStatusCanary), ``rollout/sync.go`` (shouldFullPromote,
promoteStable, resetRolloutStatus), ``rollout/trafficrouting.go`` (reconcileTrafficRouting,
calculateWeightStatus), ``rollout/analysis.go`` (reconcileAnalysisRuns,
reconcileStepBasedAnalysisRun, reconcileBackgroundAnalysisRun), ``rollout/pause.go``
(CompletedCanaryPauseStep), ``rollout/service.go`` (reconcileStableAndCanaryService,
ensureSVCTargets), ``utils/conditions/conditions.go`` (RolloutHealthy) and
``pkg/kubectl-argo-rollouts/cmd/promote``. The ReplicaSets' sizes are
:mod:`.canary_scaling`'s; what both strategies share is in :mod:`.reconciler` and
:mod:`.status`.
"""

from __future__ import annotations

from dataclasses import replace

from pytest_rollout.engine import events as ev
from pytest_rollout.engine.analysis.phases import AnalysisPhase
from pytest_rollout.engine.canary_scaling import CanaryScaling
from pytest_rollout.engine.reconciler import AFTER, Counts
from pytest_rollout.engine.replicas import (
    current_set_weight,
    current_step,
)
from pytest_rollout.engine.rollout_model import (
    AnalysisStep,
    CanaryStep,
    Pause,
    Rollout,
    SetCanaryScale,
    SetWeight,
)
from pytest_rollout.engine.status import (
    AnalysisRunRequest,
    Condition,
    ConditionReason,
    Decision,
    Observations,
    PauseCondition,
    PauseReason,
    Phase,
    PodCounts,
    ReplicaSetState,
    RolloutStatus,
    Routing,
    RunKind,
    RunObservation,
    RunStatus,
    TrafficWeights,
    abort,
    calculate_phase,
    promote_full,
    retry,
)
from pytest_rollout.engine.traffic_weights import (
    rolling_back_from,
    stable_can_take,
    weight_on_abort_or_rollback,
    weight_on_promote_full,
)
from pytest_rollout.errors import RolloutError

__all__ = [
    "AnalysisRunRequest",
    "Condition",
    "ConditionReason",
    "Decision",
    "Observations",
    "PauseCondition",
    "PauseReason",
    "Phase",
    "PodCounts",
    "ReplicaSetState",
    "RolloutStatus",
    "Routing",
    "RunKind",
    "RunObservation",
    "RunStatus",
    "TrafficWeights",
    "abort",
    "calculate_phase",
    "promote",
    "promote_full",
    "retry",
    "step",
]


def step(
    status: RolloutStatus, rollout: Rollout, observations: Observations, now: float
) -> Decision:
    """One reconciliation of a canary Rollout: what to do next, and the status after it."""
    if rollout.spec.canary is None:
        raise RolloutError(
            f"Rollout/{rollout.name}: the canary engine drives canary strategies; this Rollout "
            "uses blueGreen"
        )
    return _CanaryReconciler(status, rollout, rollout.spec.canary, observations, now).run()


def promote(status: RolloutStatus, rollout: Rollout) -> RolloutStatus:
    """``kubectl argo rollouts promote``: resume a pause, or skip the step under way."""
    steps = rollout.spec.canary.steps if rollout.spec.canary is not None else ()
    run = status.step_run
    inconclusive = run is not None and run.phase == AnalysisPhase.INCONCLUSIVE
    if inconclusive and status.pause_conditions and status.controller_pause:
        return replace(
            status,
            pause_conditions=(),
            controller_pause=False,
            current_step_index=_next_index(steps, status.current_step_index),
        )
    if status.pause_conditions:
        return replace(status, pause_conditions=())
    if steps:
        return replace(status, current_step_index=_next_index(steps, status.current_step_index))
    return status


def _next_index(steps: tuple[CanaryStep, ...], index: int | None) -> int:
    current = 0 if index is None else index
    return current + 1 if current < len(steps) else current


class _CanaryReconciler(CanaryScaling):
    """One pass of the canary controller; the ReplicaSets' sizes are :class:`CanaryScaling`'s."""

    # -- the pass --

    def run(self) -> Decision:
        self.check_paused_conditions()
        if self._template_or_steps_changed():
            return self._finish(reset=True)
        self.ensure_new_replica_set()
        self.clean_up_revision_history()
        self._reconcile_services()
        self._reconcile_traffic_routing()
        self._reconcile_analysis_runs()
        # An inconclusive analysis pauses before anything is scaled.
        if not self.pause.added:
            self._reconcile_replica_sets()
            self._reconcile_canary_pause()
        return self._finish(reset=False)

    def _template_or_steps_changed(self) -> bool:
        prev = self.prev
        # A status never synced counts as a change: Argo's first sync only records the hash.
        if not prev.current_pod_hash or prev.current_pod_hash != self.desired_hash:
            return True
        return bool(prev.current_step_hash) and prev.current_step_hash != self.rollout.steps_hash

    def _reconcile_services(self) -> None:
        """``reconcileStableAndCanaryService``; a basic canary's canary Service goes back to
        the stable ReplicaSet on abort."""
        self.stable_selector = self._ensure_targets(
            self.canary.stable_service, self.stable_selector, self.stable_rs
        )
        if self.pause.aborted:
            if not self.traffic_routed:
                self.canary_selector = self._ensure_targets(
                    self.canary.canary_service, self.canary_selector, self.stable_rs
                )
            # With traffic routing, Argo points the canary Service at the canary here and back
            # at the stable in reconcileTrafficRouting, within the same pass; only the second
            # switch is kept (one SwitchService event, the same selector in the end).
            return
        if self._rolling_back_from() is not None:
            # Back on the stable template with an undersized stable: the canary Service stays
            # on the previous canary until the stable can take its traffic.
            return
        self.canary_selector = self._ensure_targets(
            self.canary.canary_service, self.canary_selector, self.new_rs
        )

    def _ensure_targets(self, service: str | None, current: str, rs: ReplicaSetState | None) -> str:
        """``ensureSVCTargets``: point a Service at a ReplicaSet only once it has a pod
        available (all of them when the Service is first adopted)."""
        if not service or rs is None or current == rs.pod_hash:
            return current
        available = self.pods(rs.pod_hash).available
        if not current and not (rs.replicas != 0 and available != 0 and rs.replicas <= available):
            return current
        if available == 0:
            return current
        return self.switch_service(service, current, rs.pod_hash)

    # -- traffic routing --

    def _reconcile_traffic_routing(self) -> None:
        if not self.traffic_routed:
            self.weights = None
            return
        prev = self.prev
        new, stable = self.new_rs, self.stable_rs
        _, index = current_step(self.steps, prev.current_step_index)
        canary_hash = new.pod_hash if new is not None else ""
        desired = 0
        previous_canary = self._rolling_back_from()
        if previous_canary is not None:
            # Balance the previous canary against the stable, not the stable against itself.
            desired = self._weight_on_abort_or_rollback()
            canary_hash = previous_canary
        elif prev.stable_rs == prev.current_pod_hash:
            desired = 0
        elif self.pause.aborted:
            desired = self._weight_on_abort_or_rollback()
            if stable is not None and (desired == 0 or not self.dynamic):
                self.canary_selector = self.switch_service(
                    self.canary.canary_service, self.canary_selector, stable.pod_hash
                )
        elif new is None or self.pods(new.pod_hash).available == 0:
            desired = 0
        elif prev.promote_full:
            if self.dynamic:
                desired = weight_on_promote_full(self.replicas, self.pods(new.pod_hash).available)
            else:
                desired = prev.weights.canary if prev.weights is not None else 0
        elif index is not None:
            if not self._at_desired_replica_counts(None):
                # The new ReplicaSet is not ready for a new weight: keep the previous one.
                desired = next(
                    (s.weight for s in reversed(self.steps[:index]) if isinstance(s, SetWeight)), 0
                )
            elif index != len(self.steps):
                desired = current_set_weight(self.position)
            else:
                desired = 100
        stable_size = self._size(stable) if stable is not None else None
        if not stable_can_take(stable_size, 100 - desired, self.replicas):
            return  # the router keeps its weights until the stable has the pods
        weights = TrafficWeights(
            canary=desired,
            canary_hash=canary_hash,
            stable_hash=stable.pod_hash if stable is not None else "",
        )
        if weights != prev.weights:
            previous = prev.weights.canary if prev.weights is not None else None
            self.emit(ev.traffic_weight_updated(previous, desired, at=self.now))
            self.weights = weights

    def _rolling_back_from(self) -> str | None:
        prev = self.prev
        return rolling_back_from(
            dynamic_stable_scale=self.dynamic,
            fully_promoted=prev.stable_rs == prev.current_pod_hash,
            weighted_canary_hash=prev.weights.canary_hash if prev.weights is not None else None,
            desired_hash=self.desired_hash,
            desired_available=self.pods(self.desired_hash).available,
            replicas=self.replicas,
        )

    def _weight_on_abort_or_rollback(self) -> int:
        dynamic = self._dynamic_scale(self.sets, self.prev.weights)
        return weight_on_abort_or_rollback(self.replicas, self.position, dynamic)

    # -- pause steps --

    def _reconcile_canary_pause(self) -> None:
        prev = self.prev
        if prev.promote_full:
            return
        step_now, _ = current_step(self.steps, prev.current_step_index)
        if not isinstance(step_now, Pause):
            return
        condition = self.pause_condition(PauseReason.CANARY_PAUSE_STEP)
        if condition is None:
            if not prev.controller_pause:
                self.pause.added.append(PauseReason.CANARY_PAUSE_STEP)
            return
        if step_now.seconds is not None:
            self.wake.append(condition.start_time + step_now.seconds + AFTER)

    # -- analysis --

    def _reconcile_analysis_runs(self) -> None:
        prev = self.prev
        current_step_run, current_background = self.step_run, self.background_run
        new = self.new_rs
        skip = (
            self.pause.aborted
            or prev.promote_full
            or (new is not None and new.scale_down_at is not None)
            or not prev.stable_rs
        )
        if skip:
            self.terminate(current_step_run)
            self.terminate(current_background)
            return
        step_run = self._reconcile_step_run(current_step_run)
        background = self._reconcile_background_run(current_background)
        kept = {run.name for run in (step_run, background) if run is not None}
        for run in (current_step_run, current_background):
            if run is not None and run.name not in kept:
                self.terminate(run)
        self.emit_run_change(prev.step_run, step_run)
        self.emit_run_change(prev.background_run, background)
        self.step_run, self.background_run = step_run, background

    def _judge(self, run: RunStatus, label: str) -> None:
        if run.phase == AnalysisPhase.INCONCLUSIVE:
            self.pause.added.append(PauseReason.INCONCLUSIVE_ANALYSIS)
        elif run.phase in (AnalysisPhase.ERROR, AnalysisPhase.FAILED):
            self.pause.add_abort(f"{label} analysis phase error/failed: {run.message}")

    def _reconcile_step_run(self, run: RunStatus | None) -> RunStatus | None:
        prev = self.prev
        step_now, index = current_step(self.steps, prev.current_step_index)
        if prev.pause_conditions or prev.abort:
            return run
        if not isinstance(step_now, AnalysisStep) or index is None:
            self.terminate(run)
            return None
        if self.needs_new_run(run):
            return self.create_run(RunKind.STEP, step_now.analysis, str(index))
        assert run is not None
        self._judge(run, "Step-based")
        return run

    def _reconcile_background_run(self, run: RunStatus | None) -> RunStatus | None:
        prev = self.prev
        analysis = self.canary.analysis
        if analysis is None:
            self.terminate(run)
            return None
        fully_promoted = prev.stable_rs == prev.current_pod_hash
        if fully_promoted or not prev.stable_rs or not prev.current_pod_hash:
            return None
        _, index = current_step(self.steps, prev.current_step_index)
        if (
            analysis.starting_step is not None
            and index is not None
            and index < analysis.starting_step
        ):
            return None
        if self.pause_condition(PauseReason.INCONCLUSIVE_ANALYSIS) is not None:
            return run
        if self.needs_new_run(run):
            return self.create_run(RunKind.BACKGROUND, analysis, None)
        assert run is not None
        self._judge(run, "Background")
        return run

    # -- status --

    def _should_full_promote(self) -> str:
        prev = self.prev
        if self.stable_rs is None:
            return "Initial deploy"
        if self.pause.aborted:
            return ""
        new = self.new_rs
        if new is None or self.pods(new.pod_hash).available != self.replicas:
            return ""
        if prev.promote_full:
            return "Full promotion requested"
        _, index = current_step(self.steps, prev.current_step_index)
        if not self.steps or index == len(self.steps):
            return f"Completed all {len(self.steps)} canary steps"
        return ""

    def _completed_current_step(self) -> bool:
        step_now, _ = current_step(self.steps, self.prev.current_step_index)
        if isinstance(step_now, Pause):
            condition = self.pause_condition(PauseReason.CANARY_PAUSE_STEP)
            if self.prev.controller_pause and condition is None:
                return True
            seconds = step_now.seconds
            return (
                seconds is not None
                and condition is not None
                and self.now > condition.start_time + seconds
            )
        if isinstance(step_now, SetCanaryScale | SetWeight):
            return self._at_desired_replica_counts(self.weights)
        if isinstance(step_now, AnalysisStep):
            run = self.step_run
            return run is not None and run.phase == AnalysisPhase.SUCCESSFUL
        return False

    def _finish(self, *, reset: bool) -> Decision:
        prev = self.prev
        steps = self.steps
        _, index = current_step(steps, prev.current_step_index)
        stable = prev.stable_rs
        promote_full_flag = self.desired_hash != stable and prev.promote_full
        step_run, background = self.step_run, self.background_run
        if reset:
            self.pause.clear()
            self.pause.remove_abort()
            promote_full_flag = False
            self.terminate(step_run)
            self.terminate(background)
            step_run = background = None
            index = 0 if steps else None
            if self.new_rs is not None and steps and stable == self.desired_hash:
                self.emit(ev.skip_steps(at=self.now))
                index = len(steps)
        else:
            if prev.promote_full:
                self.pause.clear()
                self.pause.remove_abort()
                if steps:
                    index = len(steps)
            why = self._should_full_promote()
            if why:
                self.pause.clear()
                self.pause.remove_abort()
                promote_full_flag = False
                index = len(steps) if steps else None
                if stable != self.desired_hash:
                    stable = self.desired_hash
                    self.emit(ev.rollout_completed(self.revision, stable, why, at=self.now))
            elif self.pause.aborted:
                if steps:
                    index = len(steps) if stable == self.desired_hash else 0
            elif self._completed_current_step() and index is not None:
                step_now = steps[index]
                index += 1
                self.emit(ev.step_completed(index, len(steps), step_now.describe(), at=self.now))
                step_run = None
                self.pause.removed.append(PauseReason.CANARY_PAUSE_STEP)
        counts = self._counts()
        status = self.base_status(
            stable_rs=stable,
            current_step_index=index,
            promote_full=promote_full_flag,
            step_run=step_run,
            background_run=background,
            weights=self.weights,
            stable_selector=self.stable_selector,
            canary_selector=self.canary_selector,
            available=counts.available >= self.replicas,
            replicas=counts.replicas,
            updated_replicas=counts.updated,
            ready_replicas=counts.ready,
            available_replicas=counts.available,
        )
        strategy_progress = (
            stable != prev.stable_rs
            or (
                index is not None
                and prev.current_step_index is not None
                and index != prev.current_step_index
            )
            or self.rollout.steps_hash != prev.current_step_hash
        )
        status = self.calculate_conditions(
            status,
            healthy=self._healthy(counts, stable, index),
            progressed=self.made_progress(counts, strategy_progress),
            not_completed_revision=self.revision + 1,
        )
        return self.decide(status)

    def _counts(self) -> Counts:
        pods = [self.pods(pod_hash) for pod_hash in self.sets]
        updated = self.pods(self.desired_hash).replicas if self.desired_hash in self.sets else 0
        return Counts(
            replicas=sum(p.replicas for p in pods),
            updated=updated,
            ready=sum(p.ready for p in pods),
            available=sum(p.available for p in pods),
        )

    def _healthy(self, counts: Counts, stable: str, index: int | None) -> bool:
        """``RolloutHealthy`` for a canary: every step run, the current template stable, and
        nothing else left."""
        executed_all_steps = not self.steps or index is None or index == len(self.steps)
        return (
            counts.updated == self.replicas
            and counts.available == self.replicas
            and counts.replicas == self.replicas
            and executed_all_steps
            and bool(stable)
            and stable == self.desired_hash
        )

    def indefinite(self) -> bool:
        step_now, _ = current_step(self.steps, self.prev.current_step_index)
        return isinstance(step_now, AnalysisStep | Pause) or super().indefinite()
