"""What the canary and blueGreen controllers of Argo Rollouts do alike, as a pure base class.

A :class:`Reconciler` is one pass over one Rollout: it starts from the last status, collects
pause and abort changes in a :class:`PauseContext`, records events, ReplicaSet sizes, Service
selectors and AnalysisRuns to start or terminate, and :meth:`Reconciler.decide` turns all of it
into a :class:`~pytest_rollout.engine.status.Decision`. The strategies
(:mod:`.canary`, :mod:`.bluegreen`) add their own steps between.

Followed (argoproj/argo-rollouts): ``rollout/sync.go`` (createDesiredReplicaSet,
setRolloutRevision, scaleReplicaSet, checkPausedConditions, calculateRolloutConditions,
persistRolloutStatus, sendStateChangeEvents, requeueStuckRollout, isIndefiniteStep,
isWaitingForReplicaSetScaleDown, reconcileRevisionHistoryLimit), ``rollout/pause.go``
(pauseContext, CalculatePauseStatus), ``rollout/service.go`` (switchServiceSelector),
``rollout/analysis.go`` (needsNewAnalysisRun, emitAnalysisRunStatusChanges,
newAnalysisRunFromRollout, cancelAnalysisRuns), ``utils/analysis`` (CreateWithCollisionCounter)
and ``utils/conditions/conditions.go`` (RolloutProgressing, RolloutTimedOut, SetRolloutCondition).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from pytest_rollout.engine import events as ev
from pytest_rollout.engine.analysis.phases import AnalysisPhase
from pytest_rollout.engine.rollout_model import Rollout, RolloutAnalysis
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
    RunKind,
    RunStatus,
    calculate_phase,
)

# Pause and progress deadlines are "after", strictly: wake a hair later than the instant.
AFTER = 0.001


class PauseContext:
    """Pause and abort changes collected during one reconciliation (``rollout/pause.go``)."""

    def __init__(self, status: RolloutStatus) -> None:
        self.status = status
        self.added: list[PauseReason] = []
        self.removed: list[PauseReason] = []
        self.cleared = False
        self.abort_added = False
        self.abort_removed = False
        self.abort_message = ""

    @property
    def aborted(self) -> bool:
        if self.abort_removed:
            return False
        return self.abort_added or self.status.abort

    def add_abort(self, message: str) -> None:
        self.abort_added = True
        self.abort_message = message

    def remove_abort(self) -> None:
        self.abort_removed = True

    def clear(self) -> None:
        self.cleared = True

    def apply(self, now: float) -> tuple[bool, float | None, tuple[PauseCondition, ...], bool]:
        """``CalculatePauseStatus``: (abort, aborted_at, pause conditions, controller pause)."""
        status = self.status
        aborted_at = status.aborted_at if status.aborted_at is not None else now
        if self.abort_added or (not self.abort_removed and status.abort):
            return True, aborted_at, (), False
        if self.cleared:
            return False, None, (), False
        conditions = [c for c in status.pause_conditions if c.reason not in self.removed]
        existing = {c.reason for c in status.pause_conditions}
        controller_pause = status.controller_pause
        for reason in self.added:
            if reason not in existing:
                conditions.append(PauseCondition(reason, now))
                existing.add(reason)
                controller_pause = True
        if not conditions:
            return False, None, (), False
        return False, None, tuple(conditions), controller_pause


@dataclass(frozen=True)
class Counts:
    """``status.replicas`` and friends, as the strategy counts them."""

    replicas: int
    updated: int
    ready: int
    available: int


class Reconciler:
    """State and steps shared by the strategies' reconciliations."""

    def __init__(
        self, status: RolloutStatus, rollout: Rollout, observations: Observations, now: float
    ) -> None:
        self.prev = status
        self.rollout = rollout
        self.observations = observations
        self.now = now
        self.replicas = rollout.spec.replicas
        self.desired_hash = rollout.pod_template_hash
        self.pause = PauseContext(status)
        self.events: list[ev.Event] = []
        self.sets: dict[str, ReplicaSetState] = {rs.pod_hash: rs for rs in status.replica_sets}
        self.revision = status.revision
        self.progressing = status.progressing
        self.start_runs: list[AnalysisRunRequest] = []
        self.terminate_runs: list[str] = []
        self.run_names = list(status.run_names)
        self.terminated = list(status.terminated_runs)
        self.deleted: list[str] = []
        self.wake: list[float] = []

    # -- reading --

    def pods(self, pod_hash: str) -> PodCounts:
        return self.observations.pods.get(pod_hash, PodCounts())

    def observed(self, run: RunStatus | None) -> RunStatus | None:
        """``run`` with the phase and message its AnalysisRun has now."""
        if run is None:
            return None
        seen = self.observations.runs.get(run.name)
        if seen is None:
            return run
        return replace(run, phase=str(seen.phase), message=seen.message)

    @property
    def new_rs(self) -> ReplicaSetState | None:
        return self.sets.get(self.desired_hash)

    @property
    def stable_rs(self) -> ReplicaSetState | None:
        return self.sets.get(self.prev.stable_rs) if self.prev.stable_rs else None

    def pause_condition(self, reason: PauseReason) -> PauseCondition | None:
        return self.prev.pause_condition(reason)

    # -- recording --

    def emit(self, event: ev.Event) -> None:
        self.events.append(event)

    def condition(self, status: str, reason: str, message: str) -> Condition:
        return Condition(status, reason, message, self.now)

    def set_progressing(self, condition: Condition) -> bool:
        """``SetRolloutCondition``: unchanged when status and reason are the same."""
        current = self.progressing
        if (
            current is not None
            and current.status == condition.status
            and current.reason == condition.reason
        ):
            return False
        self.progressing = condition
        return True

    def check_paused_conditions(self) -> None:
        """``checkPausedConditions``, at the start of a pass."""
        current = self.progressing
        reason = current.reason if current is not None else ""
        paused = bool(self.prev.pause_conditions)
        abort_condition = reason == ConditionReason.ROLLOUT_ABORTED
        if paused != (reason == ConditionReason.ROLLOUT_PAUSED) and not abort_condition:
            if paused:
                condition = self.condition(
                    "Unknown", ConditionReason.ROLLOUT_PAUSED, "Rollout is paused"
                )
            else:
                condition = self.condition(
                    "Unknown", ConditionReason.ROLLOUT_RESUMED, "Rollout is resumed"
                )
            self.set_progressing(condition)
        if not self.prev.abort and abort_condition:
            self.set_progressing(
                self.condition(
                    "Unknown", ConditionReason.ROLLOUT_RETRY, "Retrying Rollout after abort"
                )
            )

    # -- ReplicaSets --

    def ensure_new_replica_set(self) -> None:
        """Create the ReplicaSet of the current template (at 0), or bring its revision up to
        date: ``createDesiredReplicaSet`` / ``syncReplicaSetRevision``."""
        latest_other = max(
            (rs.revision for pod_hash, rs in self.sets.items() if pod_hash != self.desired_hash),
            default=0,
        )
        new = self.new_rs
        if new is None:
            name = self.rollout.replica_set_name(self.desired_hash)
            new = ReplicaSetState(self.desired_hash, name, latest_other + 1, 0)
            self.sets[self.desired_hash] = new
            self.set_revision(new.revision)
            self.emit(ev.new_replica_set_created(name, new.revision, at=self.now))
            self.set_progressing(
                self.condition(
                    "True",
                    ConditionReason.NEW_REPLICA_SET_CREATED,
                    f'Created new replica set "{name}"',
                )
            )
            return
        if new.revision <= latest_other:
            new = replace(new, revision=latest_other + 1)
            self.sets[self.desired_hash] = new
        self.set_revision(new.revision)

    def set_revision(self, revision: int) -> None:
        if revision != self.revision:
            self.revision = revision
            self.emit(ev.rollout_updated(revision, at=self.now))

    def clean_up_revision_history(self) -> None:
        """``reconcileRevisionHistoryLimit``: delete the oldest scaled-down ReplicaSets beyond
        ``revisionHistoryLimit``."""
        referenced = {self.desired_hash, self.prev.stable_rs}
        old = sorted(
            (rs for rs in self.sets.values() if rs.pod_hash not in referenced),
            key=lambda rs: rs.revision,
        )
        excess = len(old) - self.rollout.spec.revision_history_limit
        for rs in old[: max(excess, 0)]:
            if rs.replicas == 0 and self.pods(rs.pod_hash).replicas == 0:
                del self.sets[rs.pod_hash]
                self.deleted.append(rs.name)

    def scale(self, rs: ReplicaSetState, replicas: int, *, keep_deadline: bool = False) -> bool:
        """``scaleReplicaSet``: a full scale-down drops the scale-down deadline unless
        ``keep_deadline`` (an abort that delays it)."""
        if rs.replicas == replicas:
            return False
        scale_down_at = rs.scale_down_at
        if replicas == 0 and not keep_deadline:
            scale_down_at = None
        self.sets[rs.pod_hash] = replace(rs, replicas=replicas, scale_down_at=scale_down_at)
        self.emit(ev.scaling_replica_set(rs.name, rs.revision, rs.replicas, replicas, at=self.now))
        return True

    def other_replica_sets(self) -> list[ReplicaSetState]:
        """Neither the current template's nor the stable ReplicaSet (``GetOtherRSs``)."""
        current = {self.desired_hash, self.prev.stable_rs}
        return [rs for rs in self.sets.values() if rs.pod_hash not in current]

    # -- Services --

    def switch_service(self, service: str | None, current: str, pod_hash: str) -> str:
        """``switchServiceSelector``: point ``service`` at ``pod_hash``; the new selector."""
        if not service or not pod_hash or current == pod_hash:
            return current
        self.emit(ev.switch_service(service, current, pod_hash, at=self.now))
        return pod_hash

    # -- AnalysisRuns --

    def terminate(self, run: RunStatus | None) -> None:
        if run is None or run.name in self.terminated or run.completed:
            return
        self.terminated.append(run.name)
        self.terminate_runs.append(run.name)

    def needs_new_run(self, run: RunStatus | None) -> bool:
        """``needsNewAnalysisRun``: none yet; or, once the controller paused for an
        Inconclusive run, a new one; or the first pass after an abort."""
        if run is None:
            return True
        prev = self.prev
        controller_paused_for_analysis = (
            prev.controller_pause
            and prev.pause_condition(PauseReason.CANARY_PAUSE_STEP) is None
            and prev.pause_condition(PauseReason.BLUE_GREEN_PAUSE) is None
        )
        if controller_paused_for_analysis:
            return run.phase == AnalysisPhase.INCONCLUSIVE
        return prev.aborted_at is not None

    def create_run(self, kind: RunKind, analysis: RolloutAnalysis, infix: str | None) -> RunStatus:
        """``newAnalysisRunFromRollout``: ``<rollout>-<hash>-<revision>[-<infix>]``, with a
        collision counter when that name was used before."""
        parts = [self.rollout.name, self.desired_hash, str(self.revision)]
        if infix is not None:
            parts.append(infix)
        name = "-".join(parts)
        if name in self.run_names:
            counter = 1
            while f"{name}.{counter}" in self.run_names:
                counter += 1
            name = f"{name}.{counter}"
        self.run_names.append(name)
        self.start_runs.append(
            AnalysisRunRequest(
                name=name,
                kind=kind,
                analysis=analysis,
                step_index=int(infix) if infix is not None and infix.isdigit() else None,
                latest_hash=self.desired_hash,
                stable_hash=self.prev.stable_rs,
                revision=self.revision,
            )
        )
        return RunStatus(name, kind)

    def emit_run_change(self, previous: RunStatus | None, run: RunStatus | None) -> None:
        """``emitAnalysisRunStatusChanges``."""
        if run is None or not run.phase:
            return
        if previous is None or (previous.name == run.name and previous.phase != run.phase):
            self.emit(
                ev.analysis_run_status(
                    str(run.kind),
                    run.name,
                    run.phase,
                    None if previous is None else previous.phase,
                    at=self.now,
                )
            )

    # -- conditions --

    def calculate_conditions(
        self, status: RolloutStatus, *, healthy: bool, progressed: bool, not_completed_revision: int
    ) -> RolloutStatus:
        """``calculateRolloutConditions`` for ``status`` (counts and selectors filled in):
        Progressing, Healthy and Completed, with the events they bring."""
        paused = bool(self.prev.pause_conditions)
        healthy_now = not paused and healthy
        became_unhealthy = not healthy_now and self.prev.healthy is True
        healthy_condition = (
            True if healthy_now else (False if self.prev.healthy is not None else None)
        )
        name = self.new_rs.name if self.new_rs is not None else self.rollout.name
        if self.pause.aborted:
            message = ev.rollout_aborted_message(self.revision, self.pause.abort_message)
            condition = self.condition("False", ConditionReason.ROLLOUT_ABORTED, message)
            if self.set_progressing(condition):
                self.emit(ev.rollout_aborted(message, at=self.now))
        elif healthy:
            self.set_progressing(
                self.condition(
                    "True",
                    ConditionReason.NEW_REPLICA_SET_AVAILABLE,
                    f'ReplicaSet "{name}" has successfully progressed.',
                )
            )
        elif progressed or became_unhealthy:
            fully_promoted = status.stable_rs == status.current_pod_hash
            if fully_promoted and became_unhealthy:
                reason, message = (
                    ConditionReason.REPLICA_SET_NOT_AVAILABLE,
                    "Rollout does not have minimum availability",
                )
            else:
                reason, message = (
                    ConditionReason.REPLICA_SET_UPDATED,
                    f'ReplicaSet "{name}" is progressing.',
                )
            self.progressing = self.condition("True", reason, message)
        elif not self.indefinite() and not self.waiting_for_scale_down() and self.timed_out():
            message = f'ReplicaSet "{name}" has timed out progressing.'
            self.set_progressing(self.condition("False", ConditionReason.TIMED_OUT, message))
            if self.rollout.spec.progress_deadline_abort:
                self.pause.add_abort(message)
                self.emit(ev.rollout_aborted(message, at=self.now))
        completed = bool(status.stable_rs) and status.stable_rs == status.current_pod_hash
        if not completed and self.prev.completed is not False:
            self.emit(
                ev.rollout_not_completed(not_completed_revision, self.desired_hash, at=self.now)
            )
        return replace(
            status,
            progressing=self.progressing,
            completed=completed,
            healthy=healthy_condition,
        )

    def made_progress(self, counts: Counts, strategy_progress: bool) -> bool:
        """``RolloutProgressing``: counts moved the right way, or the strategy did."""
        prev = self.prev
        old_before = prev.replicas - prev.updated_replicas
        old_now = counts.replicas - counts.updated
        return (
            counts.updated != prev.updated_replicas
            or old_now < old_before
            or counts.ready > prev.ready_replicas
            or counts.available > prev.available_replicas
            or strategy_progress
        )

    def indefinite(self) -> bool:
        """``isIndefiniteStep``: paused (the ``Paused`` condition); strategies add their own."""
        return bool(self.prev.pause_conditions)

    def waiting_for_scale_down(self) -> bool:
        """``isWaitingForReplicaSetScaleDown``: another ReplicaSet waits out its deadline."""
        return any(rs.scale_down_at is not None for rs in self.other_replica_sets())

    def timed_out(self) -> bool:
        """``RolloutTimedOut`` on the Progressing condition."""
        condition = self.progressing
        if condition is None or condition.reason in (
            ConditionReason.ROLLOUT_ABORTED,
            ConditionReason.ROLLOUT_PAUSED,
        ):
            return False
        if condition.reason == ConditionReason.TIMED_OUT:
            return True
        return condition.last_update + self.rollout.spec.progress_deadline_seconds < self.now

    # -- the end of a pass --

    def decide(self, status: RolloutStatus) -> Decision:
        """Pause and abort applied, phase and events settled: the pass's :class:`Decision`."""
        aborted, aborted_at, pause_conditions, controller_pause = self.pause.apply(self.now)
        self.emit_pause_change(pause_conditions, aborted)
        status = replace(
            status,
            pause_conditions=pause_conditions,
            controller_pause=controller_pause,
            abort=aborted,
            aborted_at=aborted_at,
            replica_sets=tuple(sorted(self.sets.values(), key=lambda rs: rs.revision)),
            run_names=tuple(self.run_names),
            terminated_runs=tuple(self.terminated),
        )
        phase, message = calculate_phase(status, self.rollout)
        status = replace(status, phase=phase, message=message)
        self.wake_for_progress_deadline(status)
        return Decision(
            status=status,
            events=tuple(self.events),
            start_runs=tuple(self.start_runs),
            terminate_runs=tuple(self.terminate_runs),
            deleted_replica_sets=tuple(self.deleted),
            wake_at=min(self.wake) if self.wake else None,
            changed=status != self.prev,
        )

    def base_status(self, **fields: Any) -> RolloutStatus:
        """A status with what every strategy records; ``fields`` add the strategy's."""
        return RolloutStatus(
            revision=self.revision,
            current_pod_hash=self.desired_hash,
            current_step_hash=self.rollout.steps_hash,
            **fields,
        )

    def wake_for_progress_deadline(self, status: RolloutStatus) -> None:
        """``requeueStuckRollout``."""
        condition = status.progressing
        if condition is None or status.abort or status.paused or status.phase == Phase.HEALTHY:
            return
        if condition.reason in (ConditionReason.ROLLOUT_ABORTED, ConditionReason.TIMED_OUT):
            return
        self.wake.append(
            condition.last_update + self.rollout.spec.progress_deadline_seconds + AFTER
        )

    def emit_pause_change(
        self, pause_conditions: tuple[PauseCondition, ...], aborted: bool
    ) -> None:
        """``sendStateChangeEvents``; an abort clears the pause without resuming."""
        was_paused = bool(self.prev.pause_conditions)
        if was_paused == bool(pause_conditions):
            return
        if pause_conditions:
            self.emit(ev.rollout_paused(str(pause_conditions[0].reason), at=self.now))
        elif not aborted:
            self.emit(ev.rollout_resumed(at=self.now))
