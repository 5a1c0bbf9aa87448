"""Reading Kubernetes and Argo Rollouts API objects into the backend-neutral views.

Shapes follow the API references: ``argoproj.io/v1alpha1`` Rollout and AnalysisRun status
(``pkg/apis/rollouts/v1alpha1/types.go``, ``analysis_types.go``), ``events.k8s.io/v1`` Event
(and the ``core/v1`` Event it is a view of), ``apps/v1`` Deployment status. Everything here is
pure: it takes the JSON the API server returned.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pytest_rollout.backends.base import (
    AnalysisRunView,
    EventView,
    MeasurementView,
    MetricView,
    RolloutView,
)

ROLLOUT_PHASES = ("Healthy", "Progressing", "Paused", "Degraded")
ANALYSIS_DONE = ("Successful", "Failed", "Error", "Inconclusive")


def parse_time(value: object) -> float | None:
    """RFC 3339 ``Time`` / ``MicroTime`` (``2024-05-01T10:00:00Z``, ``...00.123456Z``) -> epoch."""
    if not isinstance(value, str) or not value:
        return None
    text = value.replace("Z", "+00:00") if value.endswith("Z") else value
    try:
        parsed = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed.timestamp()


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _string(value: object, default: str = "") -> str:
    return value if isinstance(value, str) else default


def _name(obj: Mapping[str, Any]) -> str:
    return _string(_mapping(obj.get("metadata")).get("name"), "?")


# --- Rollout ------------------------------------------------------------------------------------


def rollout_view(obj: Mapping[str, Any]) -> RolloutView:
    """A Rollout's status as :class:`RolloutView`.

    ``canary_hash`` is the pod-template hash of the current template while it differs from the
    stable one (a rollout in progress or aborted); None once it is stable. ``canary_weight`` is
    the canary's traffic weight the controller last set (``status.canary.weights``), 0 without
    traffic routing. ``active_hash``/``preview_hash``: ``status.blueGreen``'s selectors.
    """
    status = _mapping(obj.get("status"))
    blue_green = _mapping(status.get("blueGreen"))
    active, preview = blue_green.get("activeSelector"), blue_green.get("previewSelector")
    stable = status.get("stableRS")
    current = status.get("currentPodHash")
    weights = _mapping(_mapping(status.get("canary")).get("weights"))
    weight = _mapping(weights.get("canary")).get("weight", 0)
    step = status.get("currentStepIndex")
    return RolloutView(
        name=_name(obj),
        phase=_string(status.get("phase")),
        message=_string(status.get("message")),
        current_step_index=step if isinstance(step, int) else None,
        canary_weight=weight if isinstance(weight, int) else 0,
        stable_hash=stable if isinstance(stable, str) and stable else None,
        canary_hash=current if isinstance(current, str) and current and current != stable else None,
        aborted=status.get("abort") is True,
        active_hash=active if isinstance(active, str) and active else None,
        preview_hash=preview if isinstance(preview, str) and preview else None,
    )


def rollout_observed(obj: Mapping[str, Any]) -> bool:
    """Whether the controller has seen the Rollout's latest spec (``observedGeneration`` is a
    string in Argo's status)."""
    generation = _mapping(obj.get("metadata")).get("generation")
    observed = _mapping(obj.get("status")).get("observedGeneration")
    return observed is not None and str(observed) == str(generation)


@dataclass(frozen=True)
class RolloutProgress:
    """How far a Rollout is from running its current template everywhere."""

    done: bool
    summary: str


def rollout_progress(obj: Mapping[str, Any]) -> RolloutProgress:
    """Completed as ``kubectl argo rollouts status`` sees it: observed, Healthy, every replica
    updated and available, and the current template is the stable one. (With traffic routing
    the old ReplicaSet lingers for ``scaleDownDelaySeconds`` without traffic; Argo calls the
    Rollout Healthy meanwhile, and so does this.)"""
    spec = _mapping(obj.get("spec"))
    status = _mapping(obj.get("status"))
    desired = spec.get("replicas", 1)
    updated = status.get("updatedReplicas", 0)
    available = status.get("availableReplicas", 0)
    replicas = status.get("replicas", 0)
    view = rollout_view(obj)
    done = (
        rollout_observed(obj)
        and view.phase == "Healthy"
        and updated == desired
        and available >= desired
        and view.canary_hash is None
    )
    summary = (
        f"phase {view.phase or '?'}"
        + (f" ({view.message})" if view.message else "")
        + f", {updated}/{desired} updated, {available} available, {replicas} total"
        + (f", step {view.current_step_index}" if view.current_step_index is not None else "")
    )
    return RolloutProgress(done, summary)


def promote_patches(
    obj: Mapping[str, Any], *, full: bool
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(spec patch, status patch) of ``kubectl argo rollouts promote [--full]``: merge patches,
    the status one for the ``status`` subresource, sent status first (Argo Rollouts v1.9.1,
    ``pkg/kubectl-argo-rollouts/cmd/promote/promote.go``, ``getPatches``).

    - ``--full``: unpause a paused spec; ``promoteFull`` while a new revision is in progress.
    - otherwise: unpause a paused spec, and
      - after an Inconclusive step analysis that paused the rollout (pause conditions and
        ``controllerPause`` set): clear both and move to the next step, so that a pause step
        right after it does not hold the rollout again;
      - else with pause conditions: clear them;
      - else on a canary with steps (promoting a running analysis or experiment step): move to
        the next step. Never past the last step.
    """
    spec = _mapping(obj.get("spec"))
    status = _mapping(obj.get("status"))
    spec_patch = {"spec": {"paused": False}} if spec.get("paused") is True else None
    if full:
        if status.get("currentPodHash") != status.get("stableRS"):
            return spec_patch, {"status": {"promoteFull": True}}
        return spec_patch, None
    step = _next_step_index(spec, status)
    if _paused_by_inconclusive_analysis(spec, status):
        if step is None:
            return spec_patch, None
        patch = {"pauseConditions": None, "controllerPause": False, "currentStepIndex": step}
        return spec_patch, {"status": patch}
    if status.get("pauseConditions"):
        return spec_patch, {"status": {"pauseConditions": None}}
    if step is not None:
        return spec_patch, {"status": {"pauseConditions": None, "currentStepIndex": step}}
    return spec_patch, None


def _next_step_index(spec: Mapping[str, Any], status: Mapping[str, Any]) -> int | None:
    """The step index after the current one, capped at the number of steps; None without
    canary steps (``utils/replicaset/canary.go``, ``GetCurrentCanaryStep``)."""
    canary = _mapping(spec.get("strategy")).get("canary")
    steps = _mapping(canary).get("steps") or []
    if canary is None or not steps:
        return None
    index = status.get("currentStepIndex")
    index = index if isinstance(index, int) else 0
    return index + 1 if index < len(steps) else index


def _paused_by_inconclusive_analysis(spec: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    canary = _mapping(spec.get("strategy")).get("canary")
    analysis = _mapping(_mapping(status.get("canary")).get("currentStepAnalysisRunStatus"))
    return (
        canary is not None
        and analysis.get("status") == "Inconclusive"
        and bool(status.get("pauseConditions"))
        and status.get("controllerPause") is True
    )


ABORT_PATCH: dict[str, Any] = {"status": {"abort": True}}
RETRY_PATCH: dict[str, Any] = {"status": {"abort": False}}


# --- AnalysisRun --------------------------------------------------------------------------------


def analysis_run_view(obj: Mapping[str, Any]) -> AnalysisRunView:
    """An AnalysisRun object as a view: its metrics' results, with the conditions of the
    run's own spec (where the controller has already filled in the arguments)."""
    status = _mapping(obj.get("status"))
    specs = {
        _string(_mapping(m).get("name")): _mapping(m)
        for m in _mapping(obj.get("spec")).get("metrics") or []
    }
    phases: dict[str, str] = {}
    metrics: list[MetricView] = []
    for result in status.get("metricResults") or []:
        result = _mapping(result)
        name = result.get("name")
        if not isinstance(name, str):
            continue
        phases[name] = _string(result.get("phase"), "Pending")
        spec = specs.get(name, {})
        metrics.append(
            MetricView(
                name=name,
                phase=phases[name],
                message=_string(result.get("message")),
                success_condition=_string(spec.get("successCondition")),
                failure_condition=_string(spec.get("failureCondition")),
                measurements=tuple(
                    _measurement_view(_mapping(m)) for m in result.get("measurements") or []
                ),
            )
        )
    return AnalysisRunView(
        name=_name(obj),
        phase=_string(status.get("phase"), "Pending"),
        message=_string(status.get("message")),
        metric_phases=phases,
        metrics=tuple(metrics),
        started_at=parse_time(status.get("startedAt")),
    )


def _measurement_view(measurement: Mapping[str, Any]) -> MeasurementView:
    return MeasurementView(
        phase=_string(measurement.get("phase"), "Pending"),
        started_at=parse_time(measurement.get("startedAt")),
        finished_at=parse_time(measurement.get("finishedAt")),
        value=_string(measurement.get("value")),
        message=_string(measurement.get("message")),
    )


def created_at(obj: Mapping[str, Any]) -> float:
    return parse_time(_mapping(obj.get("metadata")).get("creationTimestamp")) or 0.0


def owned_by(obj: Mapping[str, Any], kind: str, name: str) -> bool:
    owners = _mapping(obj.get("metadata")).get("ownerReferences") or []
    return any(
        _mapping(owner).get("kind") == kind and _mapping(owner).get("name") == name
        for owner in owners
    )


# --- Events -------------------------------------------------------------------------------------


def event_view(obj: Mapping[str, Any]) -> EventView:
    """An ``events.k8s.io/v1`` Event (or a ``core/v1`` one) as :class:`EventView`.

    The time is when the event first happened: ``eventTime``, else the (deprecated) first
    timestamp, else the object's creation.
    """
    regarding = _mapping(obj.get("regarding") or obj.get("involvedObject"))
    message = obj.get("note") if "note" in obj else obj.get("message")
    timestamp = (
        parse_time(obj.get("eventTime"))
        or parse_time(obj.get("deprecatedFirstTimestamp"))
        or parse_time(obj.get("firstTimestamp"))
        or parse_time(obj.get("deprecatedLastTimestamp"))
        or parse_time(obj.get("lastTimestamp"))
        or created_at(obj)
    )
    return EventView(
        timestamp=timestamp,
        type=_string(obj.get("type"), "Normal"),
        reason=_string(obj.get("reason")),
        message=_string(message),
        kind=_string(regarding.get("kind")),
        name=_string(regarding.get("name")),
    )


def sorted_events(objects: Iterable[Mapping[str, Any]]) -> list[EventView]:
    """Events oldest first. Controller events carry whole seconds only, so ties are broken by
    ``resourceVersion``, which grows with every write to the API server's store."""
    keyed = [(event_view(obj), _resource_version(obj)) for obj in objects]
    keyed.sort(key=lambda pair: (pair[0].timestamp, pair[1]))
    return [event for event, _ in keyed]


def _resource_version(obj: Mapping[str, Any]) -> int:
    value = _mapping(obj.get("metadata")).get("resourceVersion")
    return int(value) if isinstance(value, str) and value.isdigit() else 0


def event_line(event: EventView, origin: float) -> str:
    """``+12.3s Warning RolloutAborted rollout/name: message``, as the local backend prints."""
    return (
        f"{event.timestamp - origin:+.1f}s {event.type} {event.reason} "
        f"{event.kind.lower()}/{event.name}: {event.message}"
    )


# --- Deployment ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeploymentProgress:
    done: bool
    summary: str
    failed: str | None = None


def deployment_progress(obj: Mapping[str, Any]) -> DeploymentProgress:
    """Rolled out as ``kubectl rollout status`` decides it; ``failed`` when the Progressing
    condition says the deadline was exceeded."""
    metadata = _mapping(obj.get("metadata"))
    spec = _mapping(obj.get("spec"))
    status = _mapping(obj.get("status"))
    desired = spec.get("replicas", 1)
    updated = status.get("updatedReplicas", 0)
    available = status.get("availableReplicas", 0)
    replicas = status.get("replicas", 0)
    observed = status.get("observedGeneration", 0) >= metadata.get("generation", 0)
    failed = None
    for condition in status.get("conditions") or []:
        condition = _mapping(condition)
        if (
            condition.get("type") == "Progressing"
            and condition.get("reason") == "ProgressDeadlineExceeded"
        ):
            failed = _string(condition.get("message"), "progress deadline exceeded")
    done = observed and updated == desired and replicas == desired and available == desired
    summary = f"{updated}/{desired} updated, {available} available, {replicas} total"
    return DeploymentProgress(done, summary, failed)


def condition_true(obj: Mapping[str, Any], condition_type: str) -> bool:
    conditions = _mapping(obj.get("status")).get("conditions") or []
    return any(
        _mapping(c).get("type") == condition_type and _mapping(c).get("status") == "True"
        for c in conditions
    )


# --- Pods ---------------------------------------------------------------------------------------


def pod_containers(obj: Mapping[str, Any]) -> list[str]:
    """Names of the pod's init containers then containers (whose logs exist)."""
    spec = _mapping(obj.get("spec"))
    return [
        _string(_mapping(c).get("name"))
        for key in ("initContainers", "containers")
        for c in spec.get(key) or []
        if _string(_mapping(c).get("name"))
    ]


def pod_line(obj: Mapping[str, Any]) -> str:
    """``name phase=Running ready=True restarts=0 ip=10.244.0.7 hash=abc``."""
    status = _mapping(obj.get("status"))
    labels = _mapping(_mapping(obj.get("metadata")).get("labels"))
    statuses = [_mapping(s) for s in status.get("containerStatuses") or []]
    ready = bool(statuses) and all(s.get("ready") is True for s in statuses)
    restarts = sum(int(s.get("restartCount", 0)) for s in statuses)
    pod_hash = labels.get("rollouts-pod-template-hash") or labels.get("pod-template-hash") or "-"
    return (
        f"{_name(obj)} phase={_string(status.get('phase'), '?')} ready={ready} "
        f"restarts={restarts} ip={_string(status.get('podIP'), '-')} hash={pod_hash}"
    )
