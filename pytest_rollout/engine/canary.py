"""The canary controller of Argo Rollouts as a pure state machine.

:func:`step` is one reconciliation: it reads the last :class:`RolloutStatus`, the parsed
:class:`~pytest_rollout.engine.rollout_model.Rollout`, what was observed (pods per ReplicaSet,
AnalysisRun phases) and the time, and returns a :class:`Decision`: the new status (desired
ReplicaSet sizes, service selectors, traffic weight), the AnalysisRuns to start and terminate,
and the Events to record. It does no I/O; the engine applies the decision and calls it again
when something changes, when ``Decision.changed`` is true, or at ``Decision.wake_at``.
Commands (:func:`promote`, :func:`promote_full`, :func:`abort`, :func:`retry`) patch the status
exactly as ``kubectl argo rollouts`` does; the next :func:`step` acts on them.

Followed (argoproj/argo-rollouts): ``rollout/canary.go`` (rolloutCanary, reconcileCanaryPause,
completedCurrentCanaryStep, syncRolloutStatusCanary, scaleDownOldReplicaSetsForCanary,
reconcileCanaryReplicaSets), ``rollout/sync.go`` (createDesiredReplicaSet, setRolloutRevision,
scaleReplicaSet, calculateRolloutConditions, persistRolloutStatus, sendStateChangeEvents,
shouldFullPromote, promoteStable, resetRolloutStatus, checkPausedConditions,
reconcileRevisionHistoryLimit), ``rollout/trafficrouting.go`` (reconcileTrafficRouting,
calculateWeightStatus), ``rollout/analysis.go`` (reconcileAnalysisRuns,
reconcileStepBasedAnalysisRun, reconcileBackgroundAnalysisRun, needsNewAnalysisRun,
emitAnalysisRunStatusChanges),
``rollout/pause.go`` (pauseContext, CalculatePauseStatus, CompletedCanaryPauseStep),
``rollout/replicaset.go`` (reconcileNewReplicaSet, shouldDelayScaleDownOnAbort,
scaleDownDelayHelper, isReplicaSetReferenced), ``rollout/service.go`` (ensureSVCTargets),
``utils/replicaset/canary.go`` (AtDesiredReplicaCountsForCanary), ``utils/rollout/rolloututil.go``
(CalculateRolloutPhase), ``utils/conditions/conditions.go`` (RolloutHealthy, RolloutProgressing,
RolloutTimedOut, condition reasons), and ``pkg/kubectl-argo-rollouts/cmd/{promote,abort,retry}``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from pytest_rollout.engine import events as ev
from pytest_rollout.engine.analysis.phases import AnalysisPhase
from pytest_rollout.engine.replicas import (
    CanaryPosition,
    ReplicaCounts,
    ReplicaSetSize,
    basic_canary_replica_counts,
    canary_replicas_or_weight,
    current_set_weight,
    current_step,
    resolve_max_surge,
    resolve_max_unavailable,
    traffic_routed_replica_counts,
)
from pytest_rollout.engine.rollout_model import (
    AnalysisStep,
    CanaryStep,
    CanaryStrategy,
    Pause,
    Rollout,
    RolloutAnalysis,
    SetCanaryScale,
    SetWeight,
)
from pytest_rollout.errors import RolloutError

# Pause and progress deadlines are "after", strictly: wake a hair later than the instant.
_AFTER = 0.001


class Phase(enum.StrEnum):
    HEALTHY = "Healthy"
    PROGRESSING = "Progressing"
    PAUSED = "Paused"
    DEGRADED = "Degraded"


class PauseReason(enum.StrEnum):
    CANARY_PAUSE_STEP = "CanaryPauseStep"
    INCONCLUSIVE_ANALYSIS = "InconclusiveAnalysisRun"


class RunKind(enum.StrEnum):
    """How the Rollout started an AnalysisRun (Argo's ``rollout-type`` label)."""

    STEP = "Step"
    BACKGROUND = "Background"


class ConditionReason(enum.StrEnum):
    """Reasons of the ``Progressing`` condition (``utils/conditions/conditions.go``)."""

    NEW_REPLICA_SET_CREATED = "NewReplicaSetCreated"
    REPLICA_SET_UPDATED = "ReplicaSetUpdated"
    NEW_REPLICA_SET_AVAILABLE = "NewReplicaSetAvailable"
    ROLLOUT_PAUSED = "RolloutPaused"
    ROLLOUT_RESUMED = "RolloutResumed"
    ROLLOUT_RETRY = "RolloutRetry"
    ROLLOUT_ABORTED = "RolloutAborted"
    TIMED_OUT = "ProgressDeadlineExceeded"


# --- status --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PauseCondition:
    reason: PauseReason
    start_time: float


@dataclass(frozen=True)
class RunStatus:
    """An AnalysisRun the Rollout owns; ``phase`` is ``""`` until one was observed."""

    name: str
    kind: RunKind
    phase: str = ""
    message: str = ""


@dataclass(frozen=True)
class TrafficWeights:
    """``status.canary.weights``: the canary's share and the pods behind each side."""

    canary: int
    canary_hash: str
    stable_hash: str

    @property
    def stable(self) -> int:
        return 100 - self.canary


@dataclass(frozen=True)
class ReplicaSetState:
    """A ReplicaSet the Rollout owns; ``replicas`` is its desired size (``spec.replicas``) and
    ``scale_down_at`` Argo's ``scale-down-deadline`` annotation."""

    pod_hash: str
    name: str
    revision: int
    replicas: int
    scale_down_at: float | None = None


@dataclass(frozen=True)
class Condition:
    """The ``Progressing`` condition: status ``True``/``False``/``Unknown``."""

    status: str
    reason: str
    message: str
    last_update: float


@dataclass(frozen=True)
class RolloutStatus:
    """The Rollout's status, shaped like Argo's ``RolloutStatus``; a new Rollout starts from
    ``RolloutStatus()``."""

    revision: int = 0
    current_pod_hash: str = ""
    current_step_hash: str = ""
    stable_rs: str = ""
    current_step_index: int | None = None
    pause_conditions: tuple[PauseCondition, ...] = ()
    controller_pause: bool = False
    abort: bool = False
    aborted_at: float | None = None
    promote_full: bool = False
    step_run: RunStatus | None = None
    background_run: RunStatus | None = None
    weights: TrafficWeights | None = None
    replica_sets: tuple[ReplicaSetState, ...] = ()
    stable_selector: str = ""
    canary_selector: str = ""
    progressing: Condition | None = None
    completed: bool | None = None
    phase: Phase = Phase.PROGRESSING
    message: str = ""
    replicas: int = 0
    updated_replicas: int = 0
    ready_replicas: int = 0
    available_replicas: int = 0
    run_names: tuple[str, ...] = ()
    terminated_runs: tuple[str, ...] = ()

    def replica_set(self, pod_hash: str) -> ReplicaSetState | None:
        return next((rs for rs in self.replica_sets if rs.pod_hash == pod_hash), None)

    @property
    def paused(self) -> bool:
        return bool(self.pause_conditions)


# --- inputs and outputs --------------------------------------------------------------------


@dataclass(frozen=True)
class PodCounts:
    """A ReplicaSet's pods as observed: non-terminated, Ready, available (Ready for
    ``minReadySeconds``)."""

    replicas: int = 0
    ready: int = 0
    available: int = 0


@dataclass(frozen=True)
class RunObservation:
    phase: AnalysisPhase
    message: str = ""


@dataclass(frozen=True)
class Observations:
    """``pods`` by pod-template hash; ``runs`` by AnalysisRun name."""

    pods: Mapping[str, PodCounts] = field(default_factory=dict)
    runs: Mapping[str, RunObservation] = field(default_factory=dict)


@dataclass(frozen=True)
class AnalysisRunRequest:
    """An AnalysisRun to start. Resolve its arguments with
    :meth:`Rollout.resolve_arguments` and ``latest_hash`` / ``stable_hash``."""

    name: str
    kind: RunKind
    analysis: RolloutAnalysis
    step_index: int | None
    latest_hash: str
    stable_hash: str
    revision: int


@dataclass(frozen=True)
class Routing:
    """Where traffic goes: Service selectors by pod-template hash and the canary's weight.

    ``canary_weight`` None means no traffic routing: requests spread over all Ready pods.
    """

    stable_hash: str
    canary_hash: str
    canary_weight: int | None


@dataclass(frozen=True)
class Decision:
    status: RolloutStatus
    events: tuple[ev.Event, ...]
    start_runs: tuple[AnalysisRunRequest, ...]
    terminate_runs: tuple[str, ...]
    deleted_replica_sets: tuple[str, ...]
    wake_at: float | None
    changed: bool

    @property
    def replica_sets(self) -> tuple[ReplicaSetState, ...]:
        return self.status.replica_sets

    @property
    def routing(self) -> Routing:
        status = self.status
        weight = status.weights.canary if status.weights is not None else None
        return Routing(status.stable_selector, status.canary_selector, weight)


def step(
    status: RolloutStatus, rollout: Rollout, observations: Observations, now: float
) -> Decision:
    """One reconciliation of a canary Rollout: what to do next, and the status after it."""
    if rollout.spec.canary is None:
        raise RolloutError(
            f"Rollout/{rollout.name}: the canary engine drives canary strategies; this Rollout "
            "uses blueGreen"
        )
    return _Reconciler(status, rollout, rollout.spec.canary, observations, now).run()


# --- commands ------------------------------------------------------------------------------


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


def promote_full(status: RolloutStatus) -> RolloutStatus:
    """``promote --full``: skip the remaining steps, pauses and analysis."""
    if status.current_pod_hash == status.stable_rs:
        return status
    return replace(status, promote_full=True)


def abort(status: RolloutStatus) -> RolloutStatus:
    """``kubectl argo rollouts abort``."""
    return replace(status, abort=True)


def retry(status: RolloutStatus) -> RolloutStatus:
    """``kubectl argo rollouts retry rollout``: leave the aborted state and start over.

    A background run that failed is forgotten as well, so that the retry starts a new one.
    (Argo keeps it when the aborted canary still carries its scale-down deadline; the next
    pass then reads the old verdict and aborts again.)
    """
    background = status.background_run
    if background is not None and background.phase in (AnalysisPhase.FAILED, AnalysisPhase.ERROR):
        background = None
    return replace(status, abort=False, background_run=background)


# --- the reconciliation --------------------------------------------------------------------


class _PauseContext:
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
class _Counts:
    replicas: int
    updated: int
    ready: int
    available: int


class _Reconciler:
    def __init__(
        self,
        status: RolloutStatus,
        rollout: Rollout,
        canary: CanaryStrategy,
        observations: Observations,
        now: float,
    ) -> None:
        self.prev = status
        self.rollout = rollout
        self.canary = canary
        self.observations = observations
        self.now = now
        self.replicas = rollout.spec.replicas
        self.desired_hash = rollout.pod_template_hash
        self.steps = canary.steps
        self.traffic_routed = canary.traffic_routing is not None
        self.pause = _PauseContext(status)
        self.events: list[ev.Event] = []
        self.sets: dict[str, ReplicaSetState] = {rs.pod_hash: rs for rs in status.replica_sets}
        # Argo decides step completion on the ReplicaSets as they were when it started.
        self.initial_sets = dict(self.sets)
        self.revision = status.revision
        self.progressing = status.progressing
        self.weights = status.weights
        self.stable_selector = status.stable_selector
        self.canary_selector = status.canary_selector
        self.step_run = self._observed(status.step_run)
        self.background_run = self._observed(status.background_run)
        self.start_runs: list[AnalysisRunRequest] = []
        self.terminate_runs: list[str] = []
        self.run_names = list(status.run_names)
        self.terminated = list(status.terminated_runs)
        self.deleted: list[str] = []
        self.wake: list[float] = []
        self.position = CanaryPosition(
            steps=self.steps,
            step_index=status.current_step_index,
            stable_hash=status.stable_rs,
            current_hash=status.current_pod_hash,
            aborted=status.abort,
            promote_full=status.promote_full,
        )

    # -- helpers --

    def pods(self, pod_hash: str) -> PodCounts:
        return self.observations.pods.get(pod_hash, PodCounts())

    def _observed(self, run: RunStatus | None) -> RunStatus | None:
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

    def _emit(self, event: ev.Event) -> None:
        self.events.append(event)

    def _set_progressing(self, condition: Condition) -> bool:
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

    def _condition(self, status: str, reason: str, message: str) -> Condition:
        return Condition(status, reason, message, self.now)

    def _abort_scale_down_disabled(self) -> bool:
        return self.canary.abort_scale_down_delay is None

    # -- the pass --

    def run(self) -> Decision:
        self._check_paused_conditions()
        if self._template_or_steps_changed():
            return self._finish(reset=True)
        self._ensure_new_replica_set()
        self._clean_up_revision_history()
        self._reconcile_services()
        self._reconcile_traffic_routing()
        self._reconcile_analysis_runs()
        # An inconclusive analysis pauses before anything is scaled.
        if not self.pause.added:
            self._reconcile_replica_sets()
            self._reconcile_canary_pause()
        return self._finish(reset=False)

    def _check_paused_conditions(self) -> None:
        current = self.progressing
        reason = current.reason if current is not None else ""
        paused = bool(self.prev.pause_conditions)
        abort_condition = reason == ConditionReason.ROLLOUT_ABORTED
        if paused != (reason == ConditionReason.ROLLOUT_PAUSED) and not abort_condition:
            if paused:
                condition = self._condition(
                    "Unknown", ConditionReason.ROLLOUT_PAUSED, "Rollout is paused"
                )
            else:
                condition = self._condition(
                    "Unknown", ConditionReason.ROLLOUT_RESUMED, "Rollout is resumed"
                )
            self._set_progressing(condition)
        if not self.prev.abort and abort_condition:
            self._set_progressing(
                self._condition(
                    "Unknown", ConditionReason.ROLLOUT_RETRY, "Retrying Rollout after abort"
                )
            )

    def _template_or_steps_changed(self) -> bool:
        prev = self.prev
        # A status never synced counts as a change: Argo's first sync only records the hash.
        if not prev.current_pod_hash or prev.current_pod_hash != self.desired_hash:
            return True
        return bool(prev.current_step_hash) and prev.current_step_hash != self.rollout.steps_hash

    def _ensure_new_replica_set(self) -> None:
        latest_other = max(
            (rs.revision for pod_hash, rs in self.sets.items() if pod_hash != self.desired_hash),
            default=0,
        )
        new = self.new_rs
        if new is None:
            name = self.rollout.replica_set_name(self.desired_hash)
            new = ReplicaSetState(self.desired_hash, name, latest_other + 1, 0)
            self.sets[self.desired_hash] = new
            self._set_revision(new.revision)
            self._emit(ev.new_replica_set_created(name, new.revision, at=self.now))
            self._set_progressing(
                self._condition(
                    "True",
                    ConditionReason.NEW_REPLICA_SET_CREATED,
                    f'Created new replica set "{name}"',
                )
            )
            return
        if new.revision <= latest_other:
            new = replace(new, revision=latest_other + 1)
            self.sets[self.desired_hash] = new
        self._set_revision(new.revision)

    def _set_revision(self, revision: int) -> None:
        if revision != self.revision:
            self.revision = revision
            self._emit(ev.rollout_updated(revision, at=self.now))

    def _clean_up_revision_history(self) -> None:
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

    def _reconcile_services(self) -> None:
        if self.canary.stable_service:
            self.stable_selector = self._switch_selector(self.stable_selector, self.stable_rs)
        if self.canary.canary_service:
            self.canary_selector = self._switch_selector(self.canary_selector, self.new_rs)

    def _switch_selector(self, current: str, rs: ReplicaSetState | None) -> str:
        """``ensureSVCTargets``: point a Service at a ReplicaSet only once it has a pod
        available (all of them when the Service is first adopted)."""
        if rs is None or current == rs.pod_hash:
            return current
        available = self.pods(rs.pod_hash).available
        if not current and not (rs.replicas != 0 and available != 0 and rs.replicas <= available):
            return current
        if available == 0:
            return current
        return rs.pod_hash

    # -- traffic routing --

    def _reconcile_traffic_routing(self) -> None:
        if not self.traffic_routed:
            self.weights = None
            return
        prev = self.prev
        new, stable = self.new_rs, self.stable_rs
        _, index = current_step(self.steps, prev.current_step_index)
        desired = 0
        if prev.stable_rs == prev.current_pod_hash:
            desired = 0
        elif self.pause.aborted:
            desired = 0
            if stable is not None and self.canary.canary_service:
                self.canary_selector = stable.pod_hash
        elif new is None or self.pods(new.pod_hash).available == 0:
            desired = 0
        elif prev.promote_full:
            desired = prev.weights.canary if prev.weights is not None else 0
        elif index is not None:
            if not self._at_desired_replica_counts():
                # The new ReplicaSet is not ready for a new weight: keep the previous one.
                desired = next(
                    (s.weight for s in reversed(self.steps[:index]) if isinstance(s, SetWeight)), 0
                )
            elif index != len(self.steps):
                desired = current_set_weight(self.position)
            else:
                desired = 100
        weights = TrafficWeights(
            canary=desired,
            canary_hash=new.pod_hash if new is not None else "",
            stable_hash=stable.pod_hash if stable is not None else "",
        )
        if weights != prev.weights:
            previous = prev.weights.canary if prev.weights is not None else None
            self._emit(ev.traffic_weight_updated(previous, desired, at=self.now))
            self.weights = weights

    # -- replica counts --

    def _desired_counts(self, sets: Mapping[str, ReplicaSetState]) -> ReplicaCounts:
        if self.traffic_routed:
            return traffic_routed_replica_counts(
                self.replicas,
                self.position,
                abort_scale_down_disabled=self._abort_scale_down_disabled(),
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

    def _size(self, rs: ReplicaSetState) -> ReplicaSetSize:
        return ReplicaSetSize(rs.replicas, self.pods(rs.pod_hash).available)

    def _at_desired_replica_counts(self) -> bool:
        """``AtDesiredReplicaCountsForCanary`` on the ReplicaSets as the pass found them."""
        sets = self.initial_sets
        counts = self._desired_counts(sets)
        new = sets.get(self.desired_hash)
        if new is None or not (counts.canary == new.replicas == self.pods(new.pod_hash).available):
            return False
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
            and self.traffic_routed
            and self.canary.abort_scale_down_delay is not None
        )

    def _scale(self, rs: ReplicaSetState, replicas: int) -> bool:
        if rs.replicas == replicas:
            return False
        scale_down_at = rs.scale_down_at
        if replicas == 0 and not self._should_delay_scale_down_on_abort():
            scale_down_at = None
        self.sets[rs.pod_hash] = replace(rs, replicas=replicas, scale_down_at=scale_down_at)
        self._emit(ev.scaling_replica_set(rs.name, rs.revision, rs.replicas, replicas, at=self.now))
        return True

    def _reconcile_replica_sets(self) -> None:
        if any(c.reason == PauseReason.INCONCLUSIVE_ANALYSIS for c in self.prev.pause_conditions):
            return
        self._remove_scale_down_deadlines()
        new, stable = self.new_rs, self.stable_rs
        counts = self._desired_counts(self.sets)
        stable_is_separate = stable is not None and (new is None or stable.pod_hash != new.pod_hash)
        if stable is not None and stable_is_separate and self._scale(stable, counts.stable):
            return
        if new is not None:
            target = self._new_replica_set_target(new, counts.canary)
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
                target = self._scale_down_delay(rs)
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

    # -- pause steps --

    def _reconcile_canary_pause(self) -> None:
        prev = self.prev
        if prev.promote_full:
            return
        step_now, _ = current_step(self.steps, prev.current_step_index)
        if not isinstance(step_now, Pause):
            return
        condition = self._pause_condition(PauseReason.CANARY_PAUSE_STEP)
        if condition is None:
            if not prev.controller_pause:
                self.pause.added.append(PauseReason.CANARY_PAUSE_STEP)
            return
        if step_now.seconds is not None:
            self.wake.append(condition.start_time + step_now.seconds + _AFTER)

    def _pause_condition(self, reason: PauseReason) -> PauseCondition | None:
        return next((c for c in self.prev.pause_conditions if c.reason == reason), None)

    # -- analysis --

    def _terminate(self, run: RunStatus | None) -> None:
        if run is None or run.name in self.terminated:
            return
        if run.phase and AnalysisPhase(run.phase).completed:
            return
        self.terminated.append(run.name)
        self.terminate_runs.append(run.name)

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
            self._terminate(current_step_run)
            self._terminate(current_background)
            return
        step_run = self._reconcile_step_run(current_step_run)
        background = self._reconcile_background_run(current_background)
        kept = {run.name for run in (step_run, background) if run is not None}
        for run in (current_step_run, current_background):
            if run is not None and run.name not in kept:
                self._terminate(run)
        self._emit_run_change(prev.step_run, step_run)
        self._emit_run_change(prev.background_run, background)
        self.step_run, self.background_run = step_run, background

    def _needs_new_run(self, run: RunStatus | None) -> bool:
        if run is None:
            return True
        if self.prev.controller_pause:
            return run.phase == AnalysisPhase.INCONCLUSIVE
        return self.prev.aborted_at is not None

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
            self._terminate(run)
            return None
        if self._needs_new_run(run):
            return self._create_run(RunKind.STEP, step_now.analysis, index)
        assert run is not None
        self._judge(run, "Step-based")
        return run

    def _reconcile_background_run(self, run: RunStatus | None) -> RunStatus | None:
        prev = self.prev
        analysis = self.canary.analysis
        if analysis is None:
            self._terminate(run)
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
        if self._pause_condition(PauseReason.INCONCLUSIVE_ANALYSIS) is not None:
            return run
        if self._needs_new_run(run):
            return self._create_run(RunKind.BACKGROUND, analysis, None)
        assert run is not None
        self._judge(run, "Background")
        return run

    def _create_run(self, kind: RunKind, analysis: RolloutAnalysis, index: int | None) -> RunStatus:
        parts = [self.rollout.name, self.desired_hash, str(self.revision)]
        if index is not None:
            parts.append(str(index))
        name = "-".join(parts)
        if name in self.run_names:
            # CreateWithCollisionCounter: the same step of the same revision, run again.
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
                step_index=index,
                latest_hash=self.desired_hash,
                stable_hash=self.prev.stable_rs,
                revision=self.revision,
            )
        )
        return RunStatus(name, kind)

    def _emit_run_change(self, previous: RunStatus | None, run: RunStatus | None) -> None:
        if run is None or not run.phase:
            return
        if previous is None or (previous.name == run.name and previous.phase != run.phase):
            self._emit(
                ev.analysis_run_status(
                    str(run.kind),
                    run.name,
                    run.phase,
                    None if previous is None else previous.phase,
                    at=self.now,
                )
            )

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
            condition = self._pause_condition(PauseReason.CANARY_PAUSE_STEP)
            if self.prev.controller_pause and condition is None:
                return True
            seconds = step_now.seconds
            return (
                seconds is not None
                and condition is not None
                and self.now > condition.start_time + seconds
            )
        if isinstance(step_now, SetCanaryScale | SetWeight):
            return self._at_desired_replica_counts()
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
            self._terminate(step_run)
            self._terminate(background)
            step_run = background = None
            index = 0 if steps else None
            if self.new_rs is not None and steps and stable == self.desired_hash:
                self._emit(ev.skip_steps(at=self.now))
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
                    self._emit(ev.rollout_completed(self.revision, stable, why, at=self.now))
            elif self.pause.aborted:
                if steps:
                    index = len(steps) if stable == self.desired_hash else 0
            elif self._completed_current_step() and index is not None:
                step_now = steps[index]
                index += 1
                self._emit(ev.step_completed(index, len(steps), step_now.describe(), at=self.now))
                step_run = None
                self.pause.removed.append(PauseReason.CANARY_PAUSE_STEP)
        counts = self._counts()
        completed = self._calculate_conditions(counts, stable, index)
        aborted, aborted_at, pause_conditions, controller_pause = self.pause.apply(self.now)
        self._emit_pause_change(pause_conditions, aborted)
        status = RolloutStatus(
            revision=self.revision,
            current_pod_hash=self.desired_hash,
            current_step_hash=self.rollout.steps_hash,
            stable_rs=stable,
            current_step_index=index,
            pause_conditions=pause_conditions,
            controller_pause=controller_pause,
            abort=aborted,
            aborted_at=aborted_at,
            promote_full=promote_full_flag,
            step_run=step_run,
            background_run=background,
            weights=self.weights,
            replica_sets=tuple(sorted(self.sets.values(), key=lambda rs: rs.revision)),
            stable_selector=self.stable_selector,
            canary_selector=self.canary_selector,
            progressing=self.progressing,
            completed=completed,
            replicas=counts.replicas,
            updated_replicas=counts.updated,
            ready_replicas=counts.ready,
            available_replicas=counts.available,
            run_names=tuple(self.run_names),
            terminated_runs=tuple(self.terminated),
        )
        phase, message = calculate_phase(status, self.rollout)
        status = replace(status, phase=phase, message=message)
        self._wake_for_progress_deadline(status)
        return Decision(
            status=status,
            events=tuple(self.events),
            start_runs=tuple(self.start_runs),
            terminate_runs=tuple(self.terminate_runs),
            deleted_replica_sets=tuple(self.deleted),
            wake_at=min(self.wake) if self.wake else None,
            changed=status != prev,
        )

    def _counts(self) -> _Counts:
        pods = [self.pods(pod_hash) for pod_hash in self.sets]
        updated = self.pods(self.desired_hash).replicas if self.desired_hash in self.sets else 0
        return _Counts(
            replicas=sum(p.replicas for p in pods),
            updated=updated,
            ready=sum(p.ready for p in pods),
            available=sum(p.available for p in pods),
        )

    def _replica_set_display_name(self) -> str:
        new = self.new_rs
        return new.name if new is not None else self.rollout.name

    def _calculate_conditions(self, counts: _Counts, stable: str, index: int | None) -> bool:
        """``calculateRolloutConditions``; returns the ``Completed`` condition."""
        name = self._replica_set_display_name()
        if self.pause.aborted:
            message = ev.rollout_aborted_message(self.revision, self.pause.abort_message)
            condition = self._condition("False", ConditionReason.ROLLOUT_ABORTED, message)
            if self._set_progressing(condition):
                self._emit(ev.rollout_aborted(message, at=self.now))
        elif self._healthy(counts, stable, index):
            self._set_progressing(
                self._condition(
                    "True",
                    ConditionReason.NEW_REPLICA_SET_AVAILABLE,
                    f'ReplicaSet "{name}" has successfully progressed.',
                )
            )
        elif self._made_progress(counts, stable, index):
            self.progressing = self._condition(
                "True", ConditionReason.REPLICA_SET_UPDATED, f'ReplicaSet "{name}" is progressing.'
            )
        elif not self._indefinite_step() and self._timed_out():
            message = f'ReplicaSet "{name}" has timed out progressing.'
            self._set_progressing(self._condition("False", ConditionReason.TIMED_OUT, message))
            if self.rollout.spec.progress_deadline_abort:
                self.pause.add_abort(message)
                self._emit(ev.rollout_aborted(message, at=self.now))
        completed = bool(stable) and stable == self.desired_hash
        if not completed and self.prev.completed is not False:
            self._emit(ev.rollout_not_completed(self.revision + 1, self.desired_hash, at=self.now))
        return completed

    def _healthy(self, counts: _Counts, stable: str, index: int | None) -> bool:
        executed_all_steps = not self.steps or index is None or index == len(self.steps)
        return (
            counts.updated == self.replicas
            and counts.available == self.replicas
            and counts.replicas == self.replicas
            and executed_all_steps
            and bool(stable)
            and stable == self.desired_hash
        )

    def _made_progress(self, counts: _Counts, stable: str, index: int | None) -> bool:
        prev = self.prev
        moved_step = (
            index is not None
            and prev.current_step_index is not None
            and index != prev.current_step_index
        )
        strategy_progress = (
            stable != prev.stable_rs
            or moved_step
            or self.rollout.steps_hash != prev.current_step_hash
        )
        old_before = prev.replicas - prev.updated_replicas
        old_now = counts.replicas - counts.updated
        return (
            counts.updated != prev.updated_replicas
            or old_now < old_before
            or counts.ready > prev.ready_replicas
            or counts.available > prev.available_replicas
            or strategy_progress
        )

    def _indefinite_step(self) -> bool:
        step_now, _ = current_step(self.steps, self.prev.current_step_index)
        return isinstance(step_now, AnalysisStep | Pause)

    def _timed_out(self) -> bool:
        condition = self.progressing
        if condition is None or condition.reason == ConditionReason.ROLLOUT_ABORTED:
            return False
        if condition.reason == ConditionReason.TIMED_OUT:
            return True
        return condition.last_update + self.rollout.spec.progress_deadline_seconds < self.now

    def _wake_for_progress_deadline(self, status: RolloutStatus) -> None:
        condition = status.progressing
        if condition is None or status.abort or status.paused or status.phase == Phase.HEALTHY:
            return
        if condition.reason in (ConditionReason.ROLLOUT_ABORTED, ConditionReason.TIMED_OUT):
            return
        self.wake.append(
            condition.last_update + self.rollout.spec.progress_deadline_seconds + _AFTER
        )

    def _emit_pause_change(
        self, pause_conditions: tuple[PauseCondition, ...], aborted: bool
    ) -> None:
        """``sendStateChangeEvents``; an abort clears the pause without resuming."""
        was_paused = bool(self.prev.pause_conditions)
        if was_paused == bool(pause_conditions):
            return
        if pause_conditions:
            self._emit(ev.rollout_paused(str(pause_conditions[0].reason), at=self.now))
        elif not aborted:
            self._emit(ev.rollout_resumed(at=self.now))


def calculate_phase(status: RolloutStatus, rollout: Rollout) -> tuple[Phase, str]:
    """``CalculateRolloutPhase``: Degraded (aborted or timed out), Paused, Progressing or
    Healthy, with Argo's messages."""
    condition = status.progressing
    if condition is not None and condition.reason in (
        ConditionReason.ROLLOUT_ABORTED,
        ConditionReason.TIMED_OUT,
    ):
        return Phase.DEGRADED, f"{condition.reason}: {condition.message}"
    if status.pause_conditions:
        return Phase.PAUSED, str(status.pause_conditions[0].reason)
    replicas = rollout.spec.replicas
    if status.updated_replicas < replicas:
        return Phase.PROGRESSING, "more replicas need to be updated"
    if status.available_replicas < status.updated_replicas:
        return Phase.PROGRESSING, "updated replicas are still becoming available"
    canary = rollout.spec.canary
    basic = canary is not None and canary.traffic_routing is None
    if basic and status.replicas > status.updated_replicas:
        return Phase.PROGRESSING, "old replicas are pending termination"
    if not status.stable_rs or status.stable_rs != status.current_pod_hash:
        return Phase.PROGRESSING, "waiting for all steps to complete"
    return Phase.HEALTHY, ""
