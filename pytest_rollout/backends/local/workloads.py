"""Workload controllers of the local backend: ReplicaSets and the Deployment controller.

Follows the Kubernetes deployment controller (``pkg/controller/deployment/rolling.go``,
``sync.go``) for the RollingUpdate strategy: a new ReplicaSet per pod-template hash, scaled up
within ``maxSurge`` while old ReplicaSets are scaled down within ``maxUnavailable``, a pod
counting as available once Ready for ``minReadySeconds``. The arithmetic lives in
:mod:`pytest_rollout.engine.deployment`; this module acts on it with real pods.
"""

from __future__ import annotations

import asyncio
import copy
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from pytest_rollout.backends.local.events import EventRecorder, ObjectRef
from pytest_rollout.backends.local.failures import FailureLatch
from pytest_rollout.backends.local.pods import Pod
from pytest_rollout.clock import epoch_now
from pytest_rollout.engine import deployment
from pytest_rollout.engine.template_hash import pod_template_hash, safe_encode
from pytest_rollout.errors import ConfigError
from pytest_rollout.fieldcheck import LOCAL_BACKEND_LABEL, FieldRef
from pytest_rollout.manifests import Manifest

_SYNC_PERIOD = 0.1
DEPLOYMENT_CONTROLLER = "deployment-controller"
REPLICASET_CONTROLLER = "replicaset-controller"

_DEPLOYMENT_SPEC_FIELDS = {
    "replicas",
    "selector",
    "template",
    "strategy",
    "minReadySeconds",
    "revisionHistoryLimit",
    "progressDeadlineSeconds",
}


def safe_suffix(length: int = 5) -> str:
    """A random pod-name suffix as Kubernetes makes them (``rand.String``: its safe alphabet)."""
    return safe_encode(secrets.token_hex(length))[:length]


class PodHost(Protocol):
    """What a controller needs from its namespace: creating and retiring pods, and where its
    failures go."""

    namespace: str
    recorder: EventRecorder
    failure: FailureLatch
    """A controller records a failed reconcile here (``failure.record(exc, what)``, from its
    ``control_loop`` error callback): every wait in the namespace then fails at once with it."""

    async def create_pod(
        self, name: str, template: Mapping[str, Any], labels: Mapping[str, str]
    ) -> Pod: ...

    def retire_pod(self, pod: Pod) -> None: ...


@dataclass
class ReplicaSet:
    """A set of identical pods for one pod-template hash."""

    name: str
    hash: str
    revision: int
    template: dict[str, Any]
    labels: dict[str, str]
    pods: list[Pod] = field(default_factory=list)
    created_at: float = field(default_factory=epoch_now)

    @property
    def replicas(self) -> int:
        """Pods that count toward the set's size: not being deleted."""
        return sum(1 for pod in self.pods if not pod.deleting)

    def available(self, min_ready_seconds: float, now: float) -> int:
        return sum(1 for pod in self.pods if is_available(pod, min_ready_seconds, now))

    def ready(self) -> int:
        return sum(1 for pod in self.pods if pod.ready and not pod.deleting)


def is_available(pod: Pod, min_ready_seconds: float, now: float) -> bool:
    """Ready, not terminating, and Ready for at least ``minReadySeconds``."""
    since = pod.ready_since
    return pod.ready and not pod.deleting and since is not None and now - since >= min_ready_seconds


@dataclass(frozen=True)
class DeploymentStatus:
    name: str
    revision: int
    replicas: int
    updated_replicas: int
    ready_replicas: int
    available_replicas: int
    complete: bool
    pods: int
    """Every pod of the Deployment, terminating ones included: what the machine is running."""


class DeploymentController:
    """Drives one Deployment's ReplicaSets toward its spec with RollingUpdate."""

    def __init__(self, host: PodHost, manifest: Manifest, *, time_scale: float = 1.0) -> None:
        self.host = host
        self.name = manifest.name
        self.ref = ObjectRef("Deployment", manifest.name, host.namespace)
        spec = manifest.body.get("spec")
        if not isinstance(spec, dict):
            raise manifest.error(("spec",), "must be a mapping")
        FieldRef(("spec",), manifest, LOCAL_BACKEND_LABEL).only(spec, _DEPLOYMENT_SPEC_FIELDS)
        replicas = spec.get("replicas", 1)
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
            raise manifest.error(("spec", "replicas"), f"must be an integer >= 0, got {replicas!r}")
        self.replicas: int = replicas
        self.strategy = _strategy(manifest, spec.get("strategy"))
        min_ready = spec.get("minReadySeconds", 0)
        if isinstance(min_ready, bool) or not isinstance(min_ready, int) or min_ready < 0:
            raise manifest.error(
                ("spec", "minReadySeconds"), f"must be an integer >= 0, got {min_ready!r}"
            )
        self.min_ready_seconds = min_ready * time_scale
        deadline = spec.get("progressDeadlineSeconds", 600)
        if isinstance(deadline, bool) or not isinstance(deadline, int) or deadline <= 0:
            raise manifest.error(
                ("spec", "progressDeadlineSeconds"), f"must be an integer > 0, got {deadline!r}"
            )
        self.progress_deadline = deadline * time_scale
        self.selector = _selector(manifest, spec)
        self.template = _template(manifest, spec, self.selector)
        self.replica_sets: list[ReplicaSet] = []
        self._revision = 0
        self._wake = asyncio.Event()
        self._progress_since = epoch_now()
        self._deadline_reported = False
        self._complete = asyncio.Event()

    # -- spec changes (on the loop) --

    def set_template(self, template: Mapping[str, Any]) -> None:
        """Replace the pod template (``kubectl apply`` of a changed Deployment)."""
        self.template = copy.deepcopy(dict(template))
        self._progress_since = epoch_now()
        self._deadline_reported = False
        self._complete.clear()
        self._wake.set()

    def poke(self) -> None:
        """Ask for a sync now (a pod changed)."""
        self._wake.set()

    # -- status (any thread: reads only) --

    def status(self) -> DeploymentStatus:
        now = epoch_now()
        new = self._current_replica_set()
        updated = new.replicas if new else 0
        available = sum(rs.available(self.min_ready_seconds, now) for rs in self.replica_sets)
        ready = sum(rs.ready() for rs in self.replica_sets)
        total = sum(rs.replicas for rs in self.replica_sets)
        complete = (
            new is not None
            and updated == self.replicas
            and total == self.replicas
            and new.available(self.min_ready_seconds, now) == self.replicas
        )
        return DeploymentStatus(
            name=self.name,
            revision=new.revision if new else 0,
            replicas=total,
            updated_replicas=updated,
            ready_replicas=ready,
            available_replicas=available,
            complete=complete,
            pods=sum(len(rs.pods) for rs in self.replica_sets),
        )

    async def wait_complete(self) -> DeploymentStatus:
        await self._complete.wait()
        return self.status()

    # -- the control loop --

    async def run(self) -> None:
        await control_loop(self.sync, self._wake, self._failed)

    def _failed(self, exc: Exception) -> None:
        # As the ReplicaSet controller does with a failed pod creation: report it on the
        # object and try again at the next sync, rather than stop reconciling. The waits on the
        # namespace fail at once with it rather than run into their deadlines.
        self.host.recorder.warning(
            self.ref,
            "FailedCreate",
            f"Error syncing: {type(exc).__name__}: {exc}",
            source=REPLICASET_CONTROLLER,
        )
        self.host.failure.record(exc, f"the reconcile of Deployment/{self.name}")

    async def sync(self) -> None:
        now = epoch_now()
        for rs in self.replica_sets:
            rs.pods = [pod for pod in rs.pods if not pod.deleted]
        new = self._current_replica_set() or self._create_replica_set()
        old = [rs for rs in self.replica_sets if rs is not new]
        step = deployment.next_step(
            self.replicas,
            self.strategy,
            deployment.ReplicaSetCounts(new.replicas, new.available(self.min_ready_seconds, now)),
            [
                deployment.ReplicaSetCounts(rs.replicas, rs.available(self.min_ready_seconds, now))
                for rs in old
            ],
        )
        if step.new_replicas != new.replicas:
            await self._scale(new, step.new_replicas)
        for rs, size in zip(old, step.old_replicas, strict=True):
            if size != rs.replicas:
                await self._scale(rs, size)
        if step.action is deployment.Action.DONE:
            if not self._complete.is_set():
                self._complete.set()
        elif not self._deadline_reported and now - self._progress_since > self.progress_deadline:
            self._deadline_reported = True
            self.host.recorder.warning(
                self.ref,
                "ProgressDeadlineExceeded",
                f'ReplicaSet "{new.name}" has timed out progressing.',
                source=DEPLOYMENT_CONTROLLER,
            )
        # Old, empty ReplicaSets with no terminating pods are history; keep them for revisions.

    def _current_replica_set(self) -> ReplicaSet | None:
        wanted = pod_template_hash(self.template)
        for rs in self.replica_sets:
            if rs.hash == wanted:
                return rs
        return None

    def _create_replica_set(self) -> ReplicaSet:
        pod_hash = pod_template_hash(self.template)
        self._revision += 1
        metadata = self.template.get("metadata") or {}
        labels = dict(metadata.get("labels") or {})
        labels["pod-template-hash"] = pod_hash
        rs = ReplicaSet(
            name=f"{self.name}-{pod_hash}",
            hash=pod_hash,
            revision=self._revision,
            template=copy.deepcopy(self.template),
            labels=labels,
        )
        self.replica_sets.append(rs)
        return rs

    async def _scale(self, rs: ReplicaSet, size: int) -> None:
        current = rs.replicas
        direction = "up" if size > current else "down"
        self.host.recorder.normal(
            self.ref,
            "ScalingReplicaSet",
            f"Scaled {direction} replica set {rs.name} from {current} to {size}",
            source=DEPLOYMENT_CONTROLLER,
        )
        await resize(self.host, rs, size)


async def control_loop(
    reconcile: Callable[[], Awaitable[float | None]],
    wake: asyncio.Event,
    on_error: Callable[[Exception], None],
) -> None:
    """Reconcile, then wait to be woken (a pod or command changed something), for the time
    ``reconcile`` asked to be called back at, or one sync period — whichever comes first.

    The period is a bound, not a sleep: it limits how late time-based conditions (pod
    availability after ``minReadySeconds``) are noticed. A failed reconcile goes to
    ``on_error`` (which reports it, and keeps it in the host's :class:`FailureLatch` so that
    waits fail with it) and is retried, as controllers do.
    """
    while True:
        wake_at: float | None = None
        try:
            wake_at = await reconcile()
        except Exception as exc:
            on_error(exc)
        wake.clear()
        timeout = _SYNC_PERIOD
        if wake_at is not None:
            timeout = max(0.0, min(timeout, wake_at - epoch_now()))
        try:
            async with asyncio.timeout(timeout):
                await wake.wait()
        except TimeoutError:
            pass


async def resize(host: PodHost, rs: ReplicaSet, size: int) -> None:
    """Create or retire pods until ``rs`` has ``size`` of them (the ReplicaSet controller)."""
    current = rs.replicas
    if size > current:
        for _ in range(size - current):
            rs.pods.append(
                await host.create_pod(f"{rs.name}-{safe_suffix()}", rs.template, rs.labels)
            )
        return
    for pod in _deletion_order(rs.pods)[: current - size]:
        host.retire_pod(pod)


def _deletion_order(pods: list[Pod]) -> list[Pod]:
    """Pods to delete first (ReplicaSet controller ``ActivePods`` ranking, simplified):
    not yet Ready before Ready, then the most recently Ready first."""
    live = [pod for pod in pods if not pod.deleting]
    return sorted(live, key=lambda p: (p.ready, -(p.ready_since or 0.0)))


def _strategy(manifest: Manifest, raw: object) -> deployment.RollingUpdate:
    if raw is None:
        return deployment.RollingUpdate()
    if not isinstance(raw, dict):
        raise manifest.error(("spec", "strategy"), "must be a mapping")
    where = FieldRef(("spec", "strategy"), manifest, LOCAL_BACKEND_LABEL)
    kind = raw.get("type", "RollingUpdate")
    if kind != "RollingUpdate":
        raise where.at("type").unsupported(["RollingUpdate"], value=kind)
    where.only(raw, ("type", "rollingUpdate"))
    try:
        return deployment.RollingUpdate.from_spec(raw.get("rollingUpdate"))
    except ConfigError as exc:
        raise manifest.error(("spec", "strategy", "rollingUpdate"), str(exc)) from exc


def _selector(manifest: Manifest, spec: Mapping[str, Any]) -> dict[str, str]:
    selector = spec.get("selector")
    if not isinstance(selector, dict) or set(selector) - {"matchLabels"}:
        raise manifest.error(
            ("spec", "selector"), "only spec.selector.matchLabels is supported by the local backend"
        )
    labels = selector.get("matchLabels")
    if not isinstance(labels, dict) or not labels:
        raise manifest.error(("spec", "selector", "matchLabels"), "must be a non-empty mapping")
    return {str(k): str(v) for k, v in labels.items()}


def _template(
    manifest: Manifest, spec: Mapping[str, Any], selector: Mapping[str, str]
) -> dict[str, Any]:
    template = spec.get("template")
    if not isinstance(template, dict) or not isinstance(template.get("spec"), dict):
        raise manifest.error(("spec", "template"), "must be a pod template with a spec")
    labels = (template.get("metadata") or {}).get("labels") or {}
    if any(labels.get(k) != v for k, v in selector.items()):
        raise manifest.error(
            ("spec", "template", "metadata", "labels"),
            f"Invalid value: {labels!r}: `selector` does not match template `labels`",
        )
    return copy.deepcopy(template)


LabelSelector = Callable[[Mapping[str, str]], bool]


def matches(selector: Mapping[str, str]) -> LabelSelector:
    """A label-selector predicate (equality-based, as Service selectors are)."""

    def predicate(labels: Mapping[str, str]) -> bool:
        return all(labels.get(key) == value for key, value in selector.items())

    return predicate
