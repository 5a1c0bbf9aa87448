"""A Rollout's status and the inputs and outputs of one reconciliation, for every strategy.

:class:`RolloutStatus` is shaped like Argo Rollouts' ``RolloutStatus``; a reconciliation
(:func:`pytest_rollout.engine.strategies.step`) reads it with the parsed Rollout, the
:class:`Observations` and the time, and returns a :class:`Decision`. The commands of
``kubectl argo rollouts`` that are the same for every strategy (:func:`abort`, :func:`retry`,
:func:`promote_full`) and the phase calculation live here too.

Followed (argoproj/argo-rollouts): ``pkg/apis/rollouts/v1alpha1/types.go`` (RolloutStatus,
BlueGreenStatus, PauseReason, the ``rollout-type`` labels), ``utils/rollout/rolloututil.go``
(CalculateRolloutPhase, waitingForBlueGreenPostPromotionAnalysis), ``utils/conditions/
conditions.go`` (condition reasons) and ``pkg/kubectl-argo-rollouts/cmd/{promote,abort,retry}``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from pytest_rollout.engine import events as ev
from pytest_rollout.engine.analysis.phases import AnalysisPhase
from pytest_rollout.engine.rollout_model import Rollout, RolloutAnalysis


class Phase(enum.StrEnum):
    HEALTHY = "Healthy"
    PROGRESSING = "Progressing"
    PAUSED = "Paused"
    DEGRADED = "Degraded"


class PauseReason(enum.StrEnum):
    CANARY_PAUSE_STEP = "CanaryPauseStep"
    INCONCLUSIVE_ANALYSIS = "InconclusiveAnalysisRun"
    BLUE_GREEN_PAUSE = "BlueGreenPause"


class RunKind(enum.StrEnum):
    """How the Rollout started an AnalysisRun (Argo's ``rollout-type`` label)."""

    STEP = "Step"
    BACKGROUND = "Background"
    PRE_PROMOTION = "PrePromotion"
    POST_PROMOTION = "PostPromotion"


class ConditionReason(enum.StrEnum):
    """Reasons of the ``Progressing`` condition (``utils/conditions/conditions.go``)."""

    NEW_REPLICA_SET_CREATED = "NewReplicaSetCreated"
    REPLICA_SET_UPDATED = "ReplicaSetUpdated"
    REPLICA_SET_NOT_AVAILABLE = "ReplicaSetNotAvailable"
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

    @property
    def completed(self) -> bool:
        return bool(self.phase) and AnalysisPhase(self.phase).completed


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
    ``RolloutStatus()``.

    ``stable_selector``/``canary_selector`` (canary) and ``active_selector``/
    ``preview_selector`` (blueGreen) are the ``rollouts-pod-template-hash`` the strategy's
    Services select, ``""`` while a Service selects every pod of the Rollout. ``completed``,
    ``available`` and ``healthy`` are the conditions of those names (None: never set).
    """

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
    pre_promotion_run: RunStatus | None = None
    post_promotion_run: RunStatus | None = None
    scale_up_preview_checkpoint: bool = False
    weights: TrafficWeights | None = None
    replica_sets: tuple[ReplicaSetState, ...] = ()
    stable_selector: str = ""
    canary_selector: str = ""
    active_selector: str = ""
    preview_selector: str = ""
    progressing: Condition | None = None
    completed: bool | None = None
    available: bool | None = None
    healthy: bool | None = None
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

    def pause_condition(self, reason: PauseReason) -> PauseCondition | None:
        return next((c for c in self.pause_conditions if c.reason == reason), None)


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
    """Where a canary's traffic goes: Service selectors by pod-template hash and the canary's
    weight.

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


def service_selectors(rollout: Rollout, status: RolloutStatus) -> dict[str, str]:
    """The pod-template hash each Service the strategy names should select, by Service name;
    a Service not yet pointed at a ReplicaSet is left out."""
    spec = rollout.spec
    pairs: list[tuple[str | None, str]] = []
    if spec.blue_green is not None:
        pairs = [
            (spec.blue_green.active_service, status.active_selector),
            (spec.blue_green.preview_service, status.preview_selector),
        ]
    elif spec.canary is not None:
        pairs = [
            (spec.canary.stable_service, status.stable_selector),
            (spec.canary.canary_service, status.canary_selector),
        ]
    return {name: pod_hash for name, pod_hash in pairs if name and pod_hash}


# --- commands shared by the strategies -----------------------------------------------------


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

    Analysis that failed is forgotten as well, so that the retry analyses afresh: a failed
    background run, and the pre- and post-promotion runs of a blue-green update (a new one
    starts once the new ReplicaSet is saturated again). Argo keeps them in the status; when
    the aborted ReplicaSet still carries its scale-down deadline, its next pass reads the old
    verdict and aborts again, or starts a pre-promotion run before any preview pod is up.
    """
    background = status.background_run
    if background is not None and background.phase in (AnalysisPhase.FAILED, AnalysisPhase.ERROR):
        background = None
    return replace(
        status,
        abort=False,
        background_run=background,
        pre_promotion_run=None,
        post_promotion_run=None,
    )


# --- phase ---------------------------------------------------------------------------------


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
    fully_promoted = bool(status.stable_rs) and status.stable_rs == status.current_pod_hash
    blue_green = rollout.spec.blue_green
    if blue_green is not None:
        if not status.active_selector or status.active_selector != status.current_pod_hash:
            return Phase.PROGRESSING, "active service cutover pending"
        if not fully_promoted:
            post = status.post_promotion_run
            if blue_green.post_promotion_analysis is not None and (
                post is None or not post.completed
            ):
                return Phase.PROGRESSING, "waiting for analysis to complete"
            return Phase.PROGRESSING, "waiting for post-promotion verification to complete"
        return Phase.HEALTHY, ""
    canary = rollout.spec.canary
    basic = canary is not None and canary.traffic_routing is None
    if basic and status.replicas > status.updated_replicas:
        return Phase.PROGRESSING, "old replicas are pending termination"
    if not fully_promoted:
        return Phase.PROGRESSING, "waiting for all steps to complete"
    return Phase.HEALTHY, ""
