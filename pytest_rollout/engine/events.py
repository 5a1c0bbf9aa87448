"""Events on a Rollout, with Argo Rollouts' reasons, types and message formats.

Followed (argoproj/argo-rollouts): ``utils/conditions/conditions.go`` (reason and message
constants: RolloutUpdatedMessage, NewReplicaSetDetailedMessage, ScalingReplicaSetMessage,
RolloutStepCompletedMessage, TrafficWeightUpdatedMessage, RolloutAbortedMessage,
RolloutCompletedMessage, RolloutNotCompletedMessage, RolloutPausedMessage, RolloutResumedMessage),
``rollout/sync.go`` (sendStateChangeEvents, promoteStable), ``rollout/service.go``
(switchServiceSelector: ``SwitchService``), ``rollout/trafficrouting.go``
(trafficWeightUpdatedMessage), ``rollout/analysis.go`` (emitAnalysisRunStatusChanges: reason
``AnalysisRun<Phase>``, Warning for Failed and Error) and ``rollout/canary.go`` (SkipSteps).
Every event is Normal unless Argo records it with ``Warnf``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class EventType(enum.StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"


class Reason(enum.StrEnum):
    ROLLOUT_UPDATED = "RolloutUpdated"
    NEW_REPLICA_SET_CREATED = "NewReplicaSetCreated"
    SCALING_REPLICA_SET = "ScalingReplicaSet"
    ROLLOUT_STEP_COMPLETED = "RolloutStepCompleted"
    ROLLOUT_PAUSED = "RolloutPaused"
    ROLLOUT_RESUMED = "RolloutResumed"
    TRAFFIC_WEIGHT_UPDATED = "TrafficWeightUpdated"
    ROLLOUT_ABORTED = "RolloutAborted"
    ROLLOUT_COMPLETED = "RolloutCompleted"
    ROLLOUT_NOT_COMPLETED = "RolloutNotCompleted"
    SKIP_STEPS = "SkipSteps"
    SWITCH_SERVICE = "SwitchService"
    ANALYSIS_RUN_PENDING = "AnalysisRunPending"
    ANALYSIS_RUN_RUNNING = "AnalysisRunRunning"
    ANALYSIS_RUN_SUCCESSFUL = "AnalysisRunSuccessful"
    ANALYSIS_RUN_FAILED = "AnalysisRunFailed"
    ANALYSIS_RUN_ERROR = "AnalysisRunError"
    ANALYSIS_RUN_INCONCLUSIVE = "AnalysisRunInconclusive"


@dataclass(frozen=True)
class Event:
    """One Kubernetes Event on the Rollout; ``at`` is wall-clock epoch seconds."""

    reason: str
    message: str
    at: float
    type: EventType = EventType.NORMAL

    def __str__(self) -> str:
        return f"{self.type} {self.reason}: {self.message}"


def rollout_updated(revision: int, *, at: float) -> Event:
    return Event(Reason.ROLLOUT_UPDATED, f"Rollout updated to revision {revision}", at)


def new_replica_set_created(name: str, revision: int, *, at: float) -> Event:
    return Event(
        Reason.NEW_REPLICA_SET_CREATED, f"Created ReplicaSet {name} (revision {revision})", at
    )


def scaling_replica_set(name: str, revision: int, old: int, new: int, *, at: float) -> Event:
    direction = "up" if old < new else "down"
    return Event(
        Reason.SCALING_REPLICA_SET,
        f"Scaled {direction} ReplicaSet {name} (revision {revision}) from {old} to {new}",
        at,
    )


def step_completed(number: int, total: int, step_text: str, *, at: float) -> Event:
    """``number`` is 1-based: the step that just completed."""
    return Event(
        Reason.ROLLOUT_STEP_COMPLETED, f"Rollout step {number}/{total} completed ({step_text})", at
    )


def rollout_paused(pause_reason: str, *, at: float) -> Event:
    return Event(Reason.ROLLOUT_PAUSED, f"Rollout is paused ({pause_reason})", at)


def rollout_resumed(*, at: float) -> Event:
    return Event(Reason.ROLLOUT_RESUMED, "Rollout is resumed", at)


def traffic_weight_updated(previous: int | None, new: int, *, at: float) -> Event:
    """Argo's message lists what changed: ``to 5``, ``from 5 to 0``, or nothing when only the
    ReplicaSets behind the weights changed."""
    if previous is None:
        detail = f"to {new}"
    elif previous != new:
        detail = f"from {previous} to {new}"
    else:
        detail = ""
    return Event(Reason.TRAFFIC_WEIGHT_UPDATED, f"Traffic weight updated {detail}", at)


def analysis_run_status(
    kind: str, name: str, phase: str, previous: str | None, *, at: float
) -> Event:
    """``kind`` is ``Step`` or ``Background``; ``previous`` None when none was recorded."""
    shown_previous = "NoPreviousStatus" if previous is None else previous
    event_type = EventType.WARNING if phase in ("Failed", "Error") else EventType.NORMAL
    return Event(
        f"AnalysisRun{phase}",
        f"{kind} Analysis Run '{name}' Status New: '{phase}' Previous: '{shown_previous}'",
        at,
        event_type,
    )


def rollout_aborted_message(revision: int, detail: str = "") -> str:
    """``Rollout aborted update to revision N`` with the abort's cause appended, if known."""
    message = f"Rollout aborted update to revision {revision}"
    return f"{message}: {detail}" if detail else message


def rollout_aborted(message: str, *, at: float) -> Event:
    return Event(Reason.ROLLOUT_ABORTED, message, at, EventType.WARNING)


def rollout_completed(revision: int, pod_hash: str, why: str, *, at: float) -> Event:
    return Event(
        Reason.ROLLOUT_COMPLETED,
        f"Rollout completed update to revision {revision} ({pod_hash}): {why}",
        at,
    )


def rollout_not_completed(revision: int, pod_hash: str, *, at: float) -> Event:
    return Event(
        Reason.ROLLOUT_NOT_COMPLETED,
        f"Rollout not completed, started update to revision {revision} ({pod_hash})",
        at,
    )


def skip_steps(*, at: float) -> Event:
    return Event(Reason.SKIP_STEPS, "Rollback to stable ReplicaSets", at)


def switch_service(service: str, old: str, new: str, *, at: float) -> Event:
    """A Service's ``rollouts-pod-template-hash`` selector changed (``old`` may be empty)."""
    return Event(
        Reason.SWITCH_SERVICE,
        f"Switched selector for service '{service}' from '{old}' to '{new}'",
        at,
    )
