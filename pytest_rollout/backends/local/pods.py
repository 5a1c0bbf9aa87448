"""Pods as real processes: the local backend's kubelet.

A :class:`Pod` runs the one container of a pod template, after its init containers, as local
processes (through ManagedProcess, each in its own session), on its own 127.x.y.z pod IP, and
gives them the kubelet's lifecycle. What is followed, and where it comes from:

* Start: events ``Scheduled`` ("Successfully assigned ns/pod to local", from
  default-scheduler), ``Pulled``, ``Created`` ("Created container: x"), ``Started`` ("Started
  container x") as ``kuberuntime_container.go`` ``startContainer`` records them. Phase
  Pending -> Running once the process runs.
* Init containers (``spec.initContainers``; the kubelet's ``computePodActions`` and ``SyncPod``
  in ``pkg/kubelet/kuberuntime/kuberuntime_manager.go``, ``getPhase`` in ``kubelet_pods.go``,
  and the "Init Containers" concept page): they run one at a time, in spec order, each to
  completion, before the app container is created, with the same events. Exit 0 starts the
  next one. A failure restarts the same init container -- through its own CrashLoopBackOff
  entry, as ``doBackOff`` keys back-off by container -- when ``restartPolicy`` is Always or
  OnFailure (under Always an init container behaves as OnFailure); under Never the pod fails
  (phase Failed). Until every init container has succeeded the pod is Pending, not Ready, and
  its app container waits in ``PodInitializing``. Deleting the pod meanwhile kills the running
  init container like any other (SIGTERM, SIGKILL after the grace period). As
  ``validateInitContainers`` does, ``lifecycle`` and the three probes are rejected on an init
  container, and names must be unique across all containers; a sidecar (``restartPolicy:
  Always`` on an init container) is unsupported.
* Probes: :mod:`.probes` (startup gates readiness and liveness). Ready follows the readiness
  probe; without one the container is Ready as soon as its process runs (and any startup probe
  has succeeded). Every failed probe records ``Unhealthy`` ("Readiness probe failed: ...").
* Restarts (``restartPolicy`` Always / OnFailure / Never): a liveness or startup failure kills
  the container (``Killing``: "Container x failed liveness probe, will be restarted"); a
  container that exits by itself is restarted too. Restarts go through the kubelet's
  CrashLoopBackOff (``flowcontrol.Backoff``: the first restart is immediate, then 10 s doubling
  to 300 s, reset after 10 minutes without a restart) with a ``BackOff`` warning ("Back-off
  restarting failed container x in pod name_ns(uid)"). ``restartCount`` counts the restarts.
* Termination (``killContainer``): on deletion Ready turns false at once and observers hear of
  it; ``Killing`` ("Stopping container x"); the preStop hook (exec, httpGet or sleep) runs
  within the grace period, which is counted from the start of deletion; then SIGTERM to the
  container's main process; after the rest of the grace period -- never less than the kubelet's
  2 s minimum -- SIGKILL to every process of the container. ``terminationGracePeriodSeconds``
  defaults to 30; a liveness/startup probe's own ``terminationGracePeriodSeconds`` applies to
  its kills. A failed hook records ``FailedPreStopHook`` ("PreStopHook failed").
* Memory: the resident set of the running containers' processes (an init container's while it
  runs), summed from /proc, sampled periodically and on demand; the peak over the pod's life is
  kept.
* Logs: each run of each container writes ``<pod dir>/<container>/<restartCount>.log``, as
  under /var/log/pods.

Local-backend specifics: the command comes from a resolver the caller passes (the image -> argv
mapping is configuration); the environment is this process's, plus ``POD_NAME``,
``POD_NAMESPACE``, ``POD_IP`` and ``HOSTNAME`` (so the process knows where to bind), plus the
resolver's, plus the container's ``env`` (``value`` with ``$(VAR)`` expansion, or ``valueFrom.
fieldRef`` for the pod's own fields). Every manifest duration is multiplied by the spec's
``time_scale`` (1 in experiments; tests use e.g. 0.1 to run integer manifests ten times faster).
Fields without meaning on one local node (``resources``, ``imagePullPolicy``, ``securityContext``
...) are accepted and have no effect; any other field outside the subset is a ConfigError.

Concurrency: a pod lives on one asyncio loop (the caller runs it, e.g. in a background thread);
its coroutines must be awaited on that loop. ``status()``, ``sample_memory()`` and the read-only
properties may be called from any thread. Readiness observers are called on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import re
import signal
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pytest_rollout._proc import ManagedProcess
from pytest_rollout.backends.local import events as ev
from pytest_rollout.backends.local.addresses import AddressAllocator, default_allocator
from pytest_rollout.backends.local.events import EventRecorder, ObjectRef
from pytest_rollout.backends.local.probes import (
    ContainerHealth,
    ExecAction,
    HealthChange,
    HTTPGetAction,
    ProbeKind,
    ProbeSpec,
    ProbeTarget,
    execute,
    expand_references,
    parse_action,
    wait_for_exit,
)
from pytest_rollout.clock import epoch_now
from pytest_rollout.errors import ConfigError, ProcessError, RolloutError, WaitTimeout

NODE_NAME = "local"
HOST_IP = "127.0.0.1"
DEFAULT_TERMINATION_GRACE_SECONDS = 30
MINIMUM_GRACE_SECONDS = 2
BACKOFF_INITIAL_SECONDS = 10
BACKOFF_MAX_SECONDS = 300
SIGKILL_WAIT_SECONDS = 10.0

_log = logging.getLogger(__name__)
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
_DNS_LABEL_RE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")

RestartPolicy = Literal["Always", "OnFailure", "Never"]
_RESTART_POLICIES: tuple[RestartPolicy, ...] = ("Always", "OnFailure", "Never")

_CONTAINER_FIELDS = {
    "name",
    "image",
    "command",
    "args",
    "env",
    "ports",
    "readinessProbe",
    "livenessProbe",
    "startupProbe",
    "lifecycle",
}
# Accepted and without effect: on one local node they change nothing a test can observe.
_CONTAINER_INERT = {
    "imagePullPolicy",
    "resources",
    "securityContext",
    "terminationMessagePath",
    "terminationMessagePolicy",
}
# Init containers run to completion before the pod can be Ready: no probes, no hooks.
_INIT_FORBIDDEN = ("lifecycle", "livenessProbe", "readinessProbe", "startupProbe")
_INIT_CONTAINER_FIELDS = _CONTAINER_FIELDS - set(_INIT_FORBIDDEN)
_POD_FIELDS = {"containers", "initContainers", "terminationGracePeriodSeconds", "restartPolicy"}
_POD_INERT = {
    "affinity",
    "automountServiceAccountToken",
    "dnsPolicy",
    "enableServiceLinks",
    "imagePullSecrets",
    "nodeSelector",
    "priorityClassName",
    "schedulerName",
    "securityContext",
    "serviceAccount",
    "serviceAccountName",
    "tolerations",
    "topologySpreadConstraints",
}
_FIELD_REFS = {
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "status.hostIP",
    "status.podIP",
}


# --- spec -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContainerPort:
    container_port: int
    name: str | None = None


@dataclass(frozen=True)
class EnvVar:
    """A container env entry: a literal ``value`` or a ``fieldRef`` to the pod's own fields."""

    name: str
    value: str = ""
    field_path: str | None = None


@dataclass(frozen=True)
class SleepAction:
    seconds: float


PreStopAction = HTTPGetAction | ExecAction | SleepAction


@dataclass(frozen=True)
class ContainerSpec:
    name: str
    image: str
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: tuple[EnvVar, ...] = ()
    ports: tuple[ContainerPort, ...] = ()
    readiness_probe: ProbeSpec | None = None
    liveness_probe: ProbeSpec | None = None
    startup_probe: ProbeSpec | None = None
    pre_stop: PreStopAction | None = None

    @property
    def named_ports(self) -> dict[str, int]:
        return {p.name: p.container_port for p in self.ports if p.name}

    @property
    def port_numbers(self) -> tuple[int, ...]:
        return tuple(p.container_port for p in self.ports)

    def probe(self, kind: ProbeKind) -> ProbeSpec | None:
        return {
            ProbeKind.READINESS: self.readiness_probe,
            ProbeKind.LIVENESS: self.liveness_probe,
            ProbeKind.STARTUP: self.startup_probe,
        }[kind]

    @classmethod
    def from_manifest(cls, raw: object, *, path: str, time_scale: float = 1.0) -> ContainerSpec:
        spec = _mapping(raw, path)
        for key in spec:
            if key not in _CONTAINER_FIELDS and key not in _CONTAINER_INERT:
                raise ConfigError(
                    f"unsupported: {path}.{key} (the local backend implements "
                    f"{', '.join(sorted(_CONTAINER_FIELDS))})"
                )
        name = spec.get("name")
        if not isinstance(name, str) or not _DNS_LABEL_RE.fullmatch(name):
            raise ConfigError(f"invalid: {path}.name={name!r}: must be a DNS label")
        image = spec.get("image")
        if not isinstance(image, str) or not image:
            raise ConfigError(f"invalid: {path}.image: must be a non-empty string")
        ports = _parse_ports(spec.get("ports", []), f"{path}.ports")
        named = {p.name: p.container_port for p in ports if p.name}
        probes: dict[ProbeKind, ProbeSpec | None] = {}
        for kind in ProbeKind:
            raw_probe = spec.get(kind.field)
            probes[kind] = (
                None
                if raw_probe is None
                else ProbeSpec.from_manifest(
                    raw_probe,
                    kind=kind,
                    path=f"{path}.{kind.field}",
                    ports=named,
                    time_scale=time_scale,
                )
            )
        return cls(
            name=name,
            image=image,
            command=_strings(spec.get("command", []), f"{path}.command"),
            args=_strings(spec.get("args", []), f"{path}.args"),
            env=_parse_env(spec.get("env", []), f"{path}.env"),
            ports=ports,
            readiness_probe=probes[ProbeKind.READINESS],
            liveness_probe=probes[ProbeKind.LIVENESS],
            startup_probe=probes[ProbeKind.STARTUP],
            pre_stop=_parse_lifecycle(
                spec.get("lifecycle"), f"{path}.lifecycle", named, time_scale
            ),
        )


@dataclass(frozen=True)
class PodSpec:
    """A pod template's ``spec`` (one container and its init containers, in order), with
    durations in scaled seconds."""

    container: ContainerSpec
    termination_grace_period: float = float(DEFAULT_TERMINATION_GRACE_SECONDS)
    restart_policy: RestartPolicy = "Always"
    time_scale: float = 1.0
    init_containers: tuple[ContainerSpec, ...] = ()

    @classmethod
    def from_manifest(cls, raw: object, *, path: str = "spec", time_scale: float = 1.0) -> PodSpec:
        """Parse a pod spec; errors name the field under ``path`` and what is allowed."""
        if not time_scale > 0:
            raise ConfigError(f"invalid: time_scale={time_scale}: must be greater than 0")
        spec = _mapping(raw, path)
        for key in spec:
            if key not in _POD_FIELDS and key not in _POD_INERT:
                raise ConfigError(
                    f"unsupported: {path}.{key} (the local backend implements "
                    f"{', '.join(sorted(_POD_FIELDS))})"
                )
        containers = spec.get("containers")
        if not isinstance(containers, list) or not containers:
            raise ConfigError(f"invalid: {path}.containers: must be a non-empty list")
        if len(containers) > 1:
            raise ConfigError(
                f"unsupported: {path}.containers[1] (the local backend runs one container per pod)"
            )
        grace = spec.get("terminationGracePeriodSeconds", DEFAULT_TERMINATION_GRACE_SECONDS)
        if isinstance(grace, bool) or not isinstance(grace, int) or grace < 0:
            raise ConfigError(
                f"invalid: {path}.terminationGracePeriodSeconds={grace!r}: must be an integer >= 0"
            )
        policy = spec.get("restartPolicy", "Always")
        if policy not in _RESTART_POLICIES:
            raise ConfigError(
                f"invalid: {path}.restartPolicy={policy!r}: allowed: {', '.join(_RESTART_POLICIES)}"
            )
        init_containers = _parse_init_containers(
            spec.get("initContainers"), f"{path}.initContainers", time_scale
        )
        container = ContainerSpec.from_manifest(
            containers[0], path=f"{path}.containers[0]", time_scale=time_scale
        )
        names = {container.name}
        for index, init in enumerate(init_containers):
            if init.name in names:
                raise ConfigError(
                    f"invalid: {path}.initContainers[{index}].name={init.name!r}: Duplicate "
                    f"value (container names must be unique within a pod)"
                )
            names.add(init.name)
        return cls(
            container=container,
            termination_grace_period=grace * time_scale,
            restart_policy=policy,
            time_scale=time_scale,
            init_containers=init_containers,
        )


def _parse_init_containers(raw: object, path: str, time_scale: float) -> tuple[ContainerSpec, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError(f"invalid: {path}: must be a list of containers")
    return tuple(
        _parse_init_container(item, f"{path}[{index}]", time_scale)
        for index, item in enumerate(raw)
    )


def _parse_init_container(raw: object, path: str, time_scale: float) -> ContainerSpec:
    """A regular init container: a container without probes or lifecycle hooks."""
    spec = _mapping(raw, path)
    if "restartPolicy" in spec:
        policy = spec["restartPolicy"]
        if policy == "Always":
            raise ConfigError(
                f"unsupported: {path}.restartPolicy=Always (sidecar containers; the local "
                f"backend runs init containers to completion only)"
            )
        raise ConfigError(f"invalid: {path}.restartPolicy={policy!r}: allowed: Always")
    for key in _INIT_FORBIDDEN:
        if key in spec:
            raise ConfigError(
                f"invalid: {path}.{key}: must not be set for init containers (they run to "
                f"completion before the pod can be Ready)"
            )
    for key in spec:
        if key not in _INIT_CONTAINER_FIELDS and key not in _CONTAINER_INERT:
            raise ConfigError(
                f"unsupported: {path}.{key} (the local backend implements "
                f"{', '.join(sorted(_INIT_CONTAINER_FIELDS))} for init containers)"
            )
    return ContainerSpec.from_manifest(spec, path=path, time_scale=time_scale)


def _parse_ports(raw: object, path: str) -> tuple[ContainerPort, ...]:
    if not isinstance(raw, list):
        raise ConfigError(f"invalid: {path}: must be a list")
    ports: list[ContainerPort] = []
    for index, item in enumerate(raw):
        where = f"{path}[{index}]"
        entry = _mapping(item, where)
        for key in entry:
            if key not in ("containerPort", "name", "protocol"):
                raise ConfigError(
                    f"unsupported: {where}.{key} (allowed: containerPort, name, protocol)"
                )
        number = entry.get("containerPort")
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= 65535:
            raise ConfigError(f"invalid: {where}.containerPort: must be an integer 1-65535")
        if entry.get("protocol", "TCP") != "TCP":
            raise ConfigError(f"unsupported: {where}.protocol={entry['protocol']!r} (TCP only)")
        name = entry.get("name")
        if name is not None and not isinstance(name, str):
            raise ConfigError(f"invalid: {where}.name: must be a string")
        ports.append(ContainerPort(number, name))
    return tuple(ports)


def _parse_env(raw: object, path: str) -> tuple[EnvVar, ...]:
    if not isinstance(raw, list):
        raise ConfigError(f"invalid: {path}: must be a list")
    env: list[EnvVar] = []
    for index, item in enumerate(raw):
        where = f"{path}[{index}]"
        entry = _mapping(item, where)
        name = entry.get("name")
        if not isinstance(name, str) or not name or "=" in name:
            raise ConfigError(f"invalid: {where}.name: must be a non-empty name without '='")
        for key in entry:
            if key not in ("name", "value", "valueFrom"):
                raise ConfigError(f"unsupported: {where}.{key} (allowed: name, value, valueFrom)")
        if "valueFrom" in entry:
            env.append(EnvVar(name, field_path=_parse_field_ref(entry["valueFrom"], where)))
            continue
        value = entry.get("value", "")
        if not isinstance(value, str):
            raise ConfigError(f"invalid: {where}.value: must be a string (quote numbers in YAML)")
        env.append(EnvVar(name, value))
    return tuple(env)


def _parse_field_ref(raw: object, where: str) -> str:
    source = _mapping(raw, f"{where}.valueFrom")
    for key in source:
        if key != "fieldRef":
            raise ConfigError(
                f"unsupported: {where}.valueFrom.{key} (the local backend resolves only "
                f"valueFrom.fieldRef)"
            )
    ref = _mapping(source.get("fieldRef"), f"{where}.valueFrom.fieldRef")
    field_path = ref.get("fieldPath")
    if field_path not in _FIELD_REFS:
        raise ConfigError(
            f"unsupported: {where}.valueFrom.fieldRef.fieldPath={field_path!r} "
            f"(allowed: {', '.join(sorted(_FIELD_REFS))})"
        )
    return str(field_path)


def _parse_lifecycle(
    raw: object, path: str, ports: Mapping[str, int], time_scale: float
) -> PreStopAction | None:
    if raw is None:
        return None
    lifecycle = _mapping(raw, path)
    for key in lifecycle:
        if key != "preStop":
            raise ConfigError(f"unsupported: {path}.{key} (the local backend runs preStop only)")
    if "preStop" not in lifecycle:
        return None
    where = f"{path}.preStop"
    hook = _mapping(lifecycle["preStop"], where)
    if "sleep" in hook and len(hook) == 1:
        sleep = _mapping(hook["sleep"], f"{where}.sleep")
        seconds = sleep.get("seconds")
        if set(sleep) != {"seconds"} or isinstance(seconds, bool) or not isinstance(seconds, int):
            raise ConfigError(f"invalid: {where}.sleep: must be {{seconds: <integer>}}")
        if seconds < 0:
            raise ConfigError(f"invalid: {where}.sleep.seconds={seconds}: must be >= 0")
        return SleepAction(seconds * time_scale)
    action = parse_action(
        hook, path=where, ports=ports, allowed=frozenset({"httpGet", "exec", "sleep"})
    )
    if not isinstance(action, (HTTPGetAction, ExecAction)):
        raise ConfigError(f"unsupported: {where}.tcpSocket (allowed: exec, httpGet, sleep)")
    return action


def _strings(raw: object, path: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        raise ConfigError(f"invalid: {path}: must be a list of strings")
    return tuple(raw)


def _mapping(value: object, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"invalid: {path}: must be a mapping")
    return value


# --- launch, state, restart back-off, memory ------------------------------------------------


@dataclass(frozen=True)
class Launch:
    """How to run a container locally: what the caller's resolver returns for an image."""

    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None


CommandResolver = Callable[[ContainerSpec, str], Launch]
"""``resolver(container, pod_ip) -> Launch``: maps the container's image (and command/args)
to a local command line."""

ReadinessObserver = Callable[["Pod", bool], None]


class PodPhase(enum.Enum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


@dataclass(frozen=True)
class ContainerState:
    """``waiting`` (reason ContainerCreating / PodInitializing / CrashLoopBackOff), ``running``
    or ``terminated`` (reason Completed / Error / StartError)."""

    state: Literal["waiting", "running", "terminated"]
    reason: str = ""
    exit_code: int | None = None
    started_at: float | None = None
    finished_at: float | None = None


@dataclass(frozen=True)
class InitContainerStatus:
    """One entry of ``status.initContainerStatuses``."""

    name: str
    state: ContainerState
    last_state: ContainerState | None = None
    restart_count: int = 0


@dataclass(frozen=True)
class MemoryUsage:
    rss_bytes: int = 0
    peak_rss_bytes: int = 0
    sampled_at: float | None = None


@dataclass(frozen=True)
class PodStatus:
    """A snapshot of a pod's state, safe to hand to another thread."""

    name: str
    namespace: str
    uid: str
    ip: str | None
    phase: PodPhase
    ready: bool
    ready_since: float | None
    started: bool
    restart_count: int
    state: ContainerState
    last_state: ContainerState | None
    deletion_timestamp: float | None
    deleted: bool
    memory: MemoryUsage
    initialized: bool = True
    init_containers: tuple[InitContainerStatus, ...] = ()


class RestartBackoff:
    """The kubelet's CrashLoopBackOff window for one container (``flowcontrol.Backoff``).

    The first restart is immediate; each later one waits the current back-off measured from
    when the container finished, the back-off doubling from ``initial`` up to ``cap``; an entry
    untouched for twice the cap starts over.
    """

    def __init__(
        self,
        initial: float = float(BACKOFF_INITIAL_SECONDS),
        cap: float = float(BACKOFF_MAX_SECONDS),
    ) -> None:
        self.initial = initial
        self.cap = cap
        self.backoff: float | None = None
        self._last_update = 0.0

    def wait_before_restart(self, finished_at: float, now: float) -> float:
        """How long a container that finished at ``finished_at`` must still wait at ``now``."""
        if self.backoff is None or self._expired(finished_at):
            return 0.0
        return max(0.0, self.backoff - (now - finished_at))

    def restarting(self, finished_at: float, now: float) -> None:
        """Advance the back-off as the container is restarted at ``now``."""
        if self.backoff is None or self._expired(finished_at):
            self.backoff = self.initial
        else:
            self.backoff = min(self.backoff * 2, self.cap)
        self._last_update = now

    def _expired(self, event_time: float) -> bool:
        return event_time - self._last_update > 2 * self.cap


def session_rss(session_id: int) -> int:
    """Resident bytes of every process in session ``session_id`` (a container's processes)."""
    total = 0
    with os.scandir("/proc") as entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as handle:
                    stat = handle.read()
            except OSError:
                continue  # the process exited while we looked
            fields = stat[stat.rfind(b")") + 2 :].split()
            if len(fields) > 21 and int(fields[3]) == session_id:
                total += int(fields[21]) * _PAGE_SIZE
    return total


class _Stop(enum.Enum):
    EXITED = "exited"
    DELETED = "deleted"
    PROBE_FAILED = "probe-failed"


@dataclass
class _Container:
    """The kubelet's record of one container of a pod: how it runs, its process and state."""

    spec: ContainerSpec
    state: ContainerState
    backoff: RestartBackoff
    init: bool = False
    launch: Launch | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    process: ManagedProcess | None = None
    last_state: ContainerState | None = None
    restart_count: int = 0

    @property
    def succeeded(self) -> bool:
        return self.state.state == "terminated" and self.state.exit_code == 0

    def running_pid(self) -> int | None:
        process = self.process
        return process.pid if process is not None and process.running() else None

    def init_status(self) -> InitContainerStatus:
        return InitContainerStatus(self.spec.name, self.state, self.last_state, self.restart_count)


# --- the pod --------------------------------------------------------------------------------


class Pod:
    """One pod: init containers, then a container process with probes, restarts, termination,
    events and memory."""

    def __init__(
        self,
        name: str,
        namespace: str,
        spec: PodSpec,
        *,
        resolver: CommandResolver,
        events: EventRecorder,
        log_dir: Path,
        labels: Mapping[str, str] | None = None,
        addresses: AddressAllocator | None = None,
        clock: Callable[[], float] = epoch_now,
        memory_interval: float | None = 1.0,
    ) -> None:
        self.name = name
        self.namespace = namespace
        self.spec = spec
        self.labels = dict(labels or {})
        self.uid = str(uuid.uuid4())
        self.ref = ObjectRef("Pod", name, namespace)
        self.created_at = clock()
        self._resolver = resolver
        self._events = events
        self._addresses = addresses if addresses is not None else default_allocator()
        self._clock = clock
        self._memory_interval = memory_interval
        self._dir = log_dir / f"{namespace}_{name}_{self.uid}"

        def backoff() -> RestartBackoff:
            return RestartBackoff(
                BACKOFF_INITIAL_SECONDS * spec.time_scale, BACKOFF_MAX_SECONDS * spec.time_scale
            )

        initializing = ContainerState("waiting", "PodInitializing")
        self._inits = tuple(
            _Container(container, initializing, backoff(), init=True)
            for container in spec.init_containers
        )
        self._app = _Container(
            spec.container,
            initializing if self._inits else ContainerState("waiting", "ContainerCreating"),
            backoff(),
        )
        self._initialized = not self._inits

        self.ip: str | None = None
        self._phase = PodPhase.PENDING
        self._ready = False
        self._ready_since: float | None = None
        self._started = False
        self._deletion_timestamp: float | None = None
        self._deletion_grace = spec.termination_grace_period
        self._deleted = False
        self._memory = MemoryUsage()
        self._memory_lock = threading.Lock()

        self._target: ProbeTarget | None = None
        self._failed_probe: ProbeKind | None = None
        self._observers: list[ReadinessObserver] = []
        self._supervisor: asyncio.Task[None] | None = None
        self._sampler: asyncio.Task[None] | None = None
        self._deletion: asyncio.Task[None] | None = None
        self._deletion_requested = asyncio.Event()
        self._first_attempt = asyncio.Event()
        self._changed = asyncio.Event()

    def __repr__(self) -> str:
        return (
            f"<Pod {self.namespace}/{self.name} {self.ip} {self._phase.value} ready={self._ready}>"
        )

    # -- read-only state (any thread) --

    @property
    def phase(self) -> PodPhase:
        return self._phase

    @property
    def ready(self) -> bool:
        return self._ready

    @property
    def ready_since(self) -> float | None:
        """When the pod last became Ready (epoch seconds); for ``minReadySeconds``."""
        return self._ready_since

    @property
    def initialized(self) -> bool:
        """The ``Initialized`` condition: every init container has succeeded."""
        return self._initialized

    @property
    def restart_count(self) -> int:
        """The app container's ``restartCount`` (init containers count their own)."""
        return self._app.restart_count

    @property
    def deleting(self) -> bool:
        return self._deletion_timestamp is not None

    @property
    def deleted(self) -> bool:
        return self._deleted

    @property
    def pid(self) -> int | None:
        """The app container's main process, while it runs."""
        return self._app.running_pid()

    def container_pids(self) -> list[int]:
        """The main process of every container running now (an init container's too)."""
        return [pid for c in self._containers() if (pid := c.running_pid()) is not None]

    @property
    def log_path(self) -> Path:
        """The current app container instance's log (``<restartCount>.log``, as under
        /var/log/pods)."""
        return self._log_path(self._app)

    def container_log_path(self, container: str, restart: int | None = None) -> Path:
        """The log of ``container`` (the app or an init container) for its ``restart``-th run
        (default: the current one)."""
        for record in self._containers():
            if record.spec.name == container:
                run = record.restart_count if restart is None else restart
                return self._dir / container / f"{run}.log"
        names = ", ".join(record.spec.name for record in self._containers())
        raise RolloutError(
            f"pod {self.namespace}/{self.name} has no container {container!r} (containers: {names})"
        )

    @property
    def memory(self) -> MemoryUsage:
        return self._memory

    def status(self) -> PodStatus:
        return PodStatus(
            name=self.name,
            namespace=self.namespace,
            uid=self.uid,
            ip=self.ip,
            phase=self._phase,
            ready=self._ready,
            ready_since=self._ready_since,
            started=self._started,
            restart_count=self._app.restart_count,
            state=self._app.state,
            last_state=self._app.last_state,
            deletion_timestamp=self._deletion_timestamp,
            deleted=self._deleted,
            memory=self._memory,
            initialized=self._initialized,
            init_containers=tuple(init.init_status() for init in self._inits),
        )

    def sample_memory(self) -> MemoryUsage:
        """Sample the running containers' resident memory now; the peak is kept across restarts."""
        rss = 0
        for container in self._containers():
            pid = container.running_pid()
            if pid is not None:
                rss += session_rss(pid)
        with self._memory_lock:
            self._memory = MemoryUsage(rss, max(rss, self._memory.peak_rss_bytes), self._clock())
            return self._memory

    def add_readiness_observer(self, observer: ReadinessObserver) -> Callable[[], None]:
        """Call ``observer(pod, ready)`` on every Ready change; returns an unsubscribe."""
        self._observers.append(observer)

        def remove() -> None:
            if observer in self._observers:
                self._observers.remove(observer)

        return remove

    # -- lifecycle (on the loop) --

    async def start(self) -> None:
        """Schedule the pod, take a pod IP and start its first container (the first init
        container, if any); returns after that first start attempt (the container may still be
        booting, or backing off if it failed)."""
        if self._supervisor is not None or self._deleted:
            raise RolloutError(f"pod {self.namespace}/{self.name}: already started")
        self._events.normal(
            self.ref,
            ev.SCHEDULED,
            f"Successfully assigned {self.namespace}/{self.name} to {NODE_NAME}",
            source=ev.SCHEDULER,
        )
        ports = sorted({port for c in self._containers() for port in c.spec.port_numbers})
        ip = self.ip = self._addresses.allocate(ports)
        try:
            for container in self._containers():
                launch = container.launch = self._resolver(container.spec, ip)
                container.env = self._environment(container.spec, launch, ip)
        except BaseException:
            self._addresses.release(ip)
            raise
        assert self._app.launch is not None
        self._target = ProbeTarget(
            pod_ip=ip,
            env=self._app.env,
            cwd=self._app.launch.cwd,
            scratch_dir=self._dir / "exec",
            name=f"pod {self.namespace}/{self.name} exec",
        )
        self._supervisor = asyncio.create_task(
            self._supervise(), name=f"pod {self.namespace}/{self.name}"
        )
        if self._memory_interval is not None:
            self._sampler = asyncio.create_task(self._sample_periodically(self._memory_interval))
        await self._first_attempt.wait()
        if self._supervisor.done():
            self._supervisor.result()  # surface a crash of the supervisor itself

    async def delete(self, grace_period_seconds: int | None = None) -> None:
        """Terminate like ``kubectl delete pod`` and wait until every process is gone.

        ``grace_period_seconds`` overrides ``terminationGracePeriodSeconds`` (scaled like the
        manifest). Safe to call more than once; later calls wait for the same termination.
        """
        if self._deletion is None:
            self._deletion = asyncio.create_task(self._terminate(grace_period_seconds))
        await asyncio.shield(self._deletion)

    async def wait_ready(self, timeout: float) -> None:
        """Wait until the pod is Ready; WaitTimeout (with the pod's state and events) if not."""
        try:
            async with asyncio.timeout(timeout):
                while not self._ready:
                    if self._deleted or self._phase in (PodPhase.SUCCEEDED, PodPhase.FAILED):
                        raise ProcessError(
                            f"pod {self.namespace}/{self.name} will never become Ready: "
                            f"{self.describe()}"
                        )
                    await self._changed.wait()
        except TimeoutError as exc:
            raise WaitTimeout(
                f"timed out after {timeout:g}s waiting for pod {self.namespace}/{self.name} "
                f"to become Ready ({self.describe()})"
            ) from exc

    def describe(self) -> str:
        """One line of evidence: phase, container states, restarts and the latest warnings."""
        app = self._app
        parts = [f"phase {self._phase.value}"]
        pending = next((init for init in self._inits if not init.succeeded), None)
        if pending is not None:
            parts.append(
                f"init container {pending.spec.name} "
                f"({self._inits.index(pending) + 1}/{len(self._inits)}) "
                + _state_text(pending.state)
                + f", init restarts {pending.restart_count}"
            )
            if pending.last_state is not None and pending.last_state.exit_code is not None:
                parts.append(f"last init exit code {pending.last_state.exit_code}")
        parts += [f"container {_state_text(app.state)}", f"restarts {app.restart_count}"]
        if app.last_state is not None and app.last_state.exit_code is not None:
            parts.append(f"last exit code {app.last_state.exit_code}")
        warnings = self._events.events(
            kind="Pod", name=self.name, namespace=self.namespace, type=ev.WARNING
        )
        if warnings:
            parts.append("recent warnings: " + " | ".join(self._events.lines(warnings[-3:])))
        return ", ".join(parts)

    # -- internals --

    def _containers(self) -> tuple[_Container, ...]:
        """Every container of the pod, init containers first, in the order they run."""
        return (*self._inits, self._app)

    def _log_path(self, container: _Container) -> Path:
        return self._dir / container.spec.name / f"{container.restart_count}.log"

    def _environment(self, container: ContainerSpec, launch: Launch, ip: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "POD_NAME": self.name,
                "POD_NAMESPACE": self.namespace,
                "POD_IP": ip,
                "HOSTNAME": self.name,
            }
        )
        env.update(launch.env)
        fields = {
            "metadata.name": self.name,
            "metadata.namespace": self.namespace,
            "metadata.uid": self.uid,
            "spec.nodeName": NODE_NAME,
            "status.hostIP": HOST_IP,
            "status.podIP": ip,
        }
        declared: dict[str, str] = {}
        for var in container.env:
            if var.field_path is not None:
                declared[var.name] = fields[var.field_path]
            else:
                declared[var.name] = expand_references(var.value, declared)
        env.update(declared)
        return env

    async def _supervise(self) -> None:
        try:
            if await self._initialize():
                await self._run_app()
        finally:
            self._first_attempt.set()
            self._stop_processes_now()
            self._notify()

    async def _initialize(self) -> bool:
        """Run the init containers one at a time, in order, each to completion.

        True once all have succeeded; False when the pod was deleted meanwhile or failed.
        """
        for init in self._inits:
            while True:
                if self._deletion_requested.is_set():
                    return False
                launched = self._start_container(init)
                self._first_attempt.set()
                if launched:
                    deleted = not await self._wait_for_exit_or_deletion(init)
                    if deleted:
                        assert self._deletion_timestamp is not None
                        await self._kill(
                            init,
                            f"Stopping container {init.spec.name}",
                            self._deletion_grace,
                            since=self._deletion_timestamp,
                        )
                        self._container_finished(init)
                        return False
                    self._container_finished(init)
                if init.succeeded:
                    break
                if self._deletion_requested.is_set():
                    return False
                if self.spec.restart_policy == "Never":
                    self._phase = PodPhase.FAILED
                    self._notify()
                    return False
                if not await self._back_off(init):
                    return False
        if self._inits:
            self._initialized = True
            self._app.state = ContainerState("waiting", "ContainerCreating")
            self._notify()
        return True

    async def _wait_for_exit_or_deletion(self, container: _Container) -> bool:
        """True when the container's process exited, False when the pod is being deleted."""
        process = container.process
        assert process is not None
        exited = asyncio.create_task(wait_for_exit(process, None))
        deleted = asyncio.create_task(self._deletion_requested.wait())
        try:
            await asyncio.wait({exited, deleted}, return_when=asyncio.FIRST_COMPLETED)
            return exited.done()
        finally:
            for task in (exited, deleted):
                task.cancel()
            await asyncio.gather(exited, deleted, return_exceptions=True)

    async def _run_app(self) -> None:
        app = self._app
        name = app.spec.name
        while not self._deletion_requested.is_set():
            launched = self._start_container(app)
            self._first_attempt.set()
            if launched:
                stop = await self._run_container()
                if stop is _Stop.DELETED:
                    assert self._deletion_timestamp is not None
                    await self._kill(
                        app,
                        f"Stopping container {name}",
                        self._deletion_grace,
                        since=self._deletion_timestamp,
                    )
                    self._container_finished(app)
                    return
                if stop is _Stop.PROBE_FAILED:
                    kind = self._failed_probe
                    assert kind is not None
                    probe = app.spec.probe(kind)
                    grace = (
                        probe.termination_grace_period
                        if probe is not None and probe.termination_grace_period is not None
                        else self.spec.termination_grace_period
                    )
                    await self._kill(
                        app,
                        f"Container {name} failed {kind.value} probe, will be restarted",
                        grace,
                        since=self._clock(),
                    )
                self._container_finished(app)
            if self._deletion_requested.is_set():
                return
            if not self._restart_wanted():
                exit_code = app.state.exit_code
                self._phase = PodPhase.SUCCEEDED if exit_code == 0 else PodPhase.FAILED
                self._notify()
                return
            if not await self._back_off(app):
                return

    async def _back_off(self, container: _Container) -> bool:
        """Wait out the container's CrashLoopBackOff, then count the restart; False when the
        pod was deleted meanwhile."""
        state = container.state
        finished_at = state.finished_at or self._clock()
        wait = container.backoff.wait_before_restart(finished_at, self._clock())
        if wait > 0:
            container.state = ContainerState(
                "waiting", "CrashLoopBackOff", state.exit_code, None, finished_at
            )
            self._events.warning(
                self.ref,
                ev.BACK_OFF,
                f"Back-off restarting failed container {container.spec.name} in pod "
                f"{self.name}_{self.namespace}({self.uid})",
            )
            self._notify()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._deletion_requested.wait()
            if self._deletion_requested.is_set():
                return False
        container.backoff.restarting(finished_at, self._clock())
        container.restart_count += 1
        return True

    def _start_container(self, container: _Container) -> bool:
        launch = container.launch
        assert launch is not None
        spec = container.spec
        self._events.normal(
            self.ref, ev.PULLED, f'Container image "{spec.image}" already present on machine'
        )
        process = ManagedProcess(
            f"pod {self.namespace}/{self.name}"
            + (f" init container {spec.name}" if container.init else ""),
            launch.argv,
            env=container.env,
            cwd=launch.cwd,
            log_path=self._log_path(container),
        )
        self._events.normal(self.ref, ev.CREATED, f"Created container: {spec.name}")
        try:
            process.start()
        except ProcessError as exc:
            now = self._clock()
            container.state = ContainerState("terminated", "StartError", 128, now, now)
            container.last_state = container.state
            self._events.warning(self.ref, ev.FAILED, f"Error: {exc}")
            self._notify()
            return False
        container.process = process
        container.state = ContainerState("running", started_at=self._clock())
        if not container.init:
            self._phase = PodPhase.RUNNING
        self._events.normal(self.ref, ev.STARTED, f"Started container {spec.name}")
        self._notify()
        return True

    async def _run_container(self) -> _Stop:
        """Probe the running app container until it exits, fails a probe, or the pod is
        deleted."""
        app, target = self._app, self._target
        process = app.process
        assert process is not None
        assert target is not None
        container = app.spec
        assert app.state.started_at is not None
        health = ContainerHealth(
            started_at=app.state.started_at,
            readiness=container.readiness_probe,
            liveness=container.liveness_probe,
            startup=container.startup_probe,
        )
        started = asyncio.Event()
        probe_failed = asyncio.Event()
        if health.started:
            started.set()
        self._started = health.started
        self._failed_probe = None
        self._set_ready(health.ready)
        probes = [
            asyncio.create_task(self._probe_loop(kind, health, target, started, probe_failed))
            for kind in health.trackers
        ]
        exited = asyncio.create_task(wait_for_exit(process, None))
        failed = asyncio.create_task(probe_failed.wait())
        deleted = asyncio.create_task(self._deletion_requested.wait())
        outcome: _Stop | None = None
        try:
            await asyncio.wait({exited, failed, deleted}, return_when=asyncio.FIRST_COMPLETED)
            outcome = (
                _Stop.EXITED
                if exited.done()
                else _Stop.DELETED
                if deleted.done()
                else _Stop.PROBE_FAILED
            )
        finally:
            tasks = [*probes, exited, failed, deleted]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if outcome is not _Stop.PROBE_FAILED:
                # A container being killed for a failed liveness probe keeps its endpoint until
                # it is gone, as on Kubernetes; in every other case readiness ends now.
                self._set_ready(False)
        return outcome

    async def _probe_loop(
        self,
        kind: ProbeKind,
        health: ContainerHealth,
        target: ProbeTarget,
        started: asyncio.Event,
        probe_failed: asyncio.Event,
    ) -> None:
        tracker = health.trackers[kind]
        spec = tracker.spec
        try:
            while True:
                at = health.next_probe_at(kind, self._clock())
                if at is None:
                    if tracker.on_hold or kind is ProbeKind.STARTUP:
                        return
                    await started.wait()
                    continue
                delay = at - self._clock()
                if delay > 0:
                    await asyncio.sleep(delay)  # the probe period itself
                result = await execute(spec.action, target, spec.timeout)
                if self._deletion_requested.is_set():
                    return
                if not result.success:
                    self._events.warning(
                        self.ref,
                        ev.UNHEALTHY,
                        f"{kind.title} probe failed: {result.output.rstrip()}",
                    )
                for change in health.record(kind, result.success, tick=at, now=self._clock()):
                    if change is HealthChange.READY:
                        self._set_ready(True)
                    elif change is HealthChange.NOT_READY:
                        self._set_ready(False)
                    elif change is HealthChange.STARTED:
                        self._started = True
                        started.set()
                    else:
                        self._failed_probe = kind
                        probe_failed.set()
        except Exception:
            _log.exception(
                "%s probe loop of pod %s/%s failed", kind.value, self.namespace, self.name
            )
            raise

    async def _kill(
        self, container: _Container, message: str, grace: float, *, since: float
    ) -> None:
        """``killContainer``: Killing event, preStop within the grace period, SIGTERM, SIGKILL."""
        process = container.process
        assert process is not None
        self._events.normal(self.ref, ev.KILLING, message)
        deadline = since + grace
        pre_stop = container.spec.pre_stop
        if pre_stop is not None and grace > 0:
            await self._run_pre_stop(pre_stop, max(0.0, deadline - self._clock()))
        remaining = max(deadline - self._clock(), MINIMUM_GRACE_SECONDS * self.spec.time_scale)
        pid = process.pid
        if pid is not None and process.returncode is None:
            # As a container runtime does: SIGTERM to the main process only.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        if await wait_for_exit(process, remaining) is None:
            process.signal(signal.SIGKILL)
            if await wait_for_exit(process, SIGKILL_WAIT_SECONDS) is None:
                raise ProcessError(
                    f"{process.name}: still running {SIGKILL_WAIT_SECONDS:g}s after SIGKILL"
                )

    async def _run_pre_stop(self, action: PreStopAction, timeout: float) -> None:
        if isinstance(action, SleepAction):
            await asyncio.sleep(min(action.seconds, timeout))  # the hook's behaviour is to sleep
            return
        assert self._target is not None
        began = self._clock()
        result = await execute(action, self._target, timeout)
        # An HTTP answer of any status completes the hook; only a hook that errored before the
        # grace period ran out is a failure (the kubelet keeps the hook's output out of events).
        failed = not result.success and result.status is None
        if failed and self._clock() - began < timeout:
            self._events.warning(self.ref, ev.FAILED_PRE_STOP_HOOK, "PreStopHook failed")

    def _container_finished(self, container: _Container) -> None:
        process = container.process
        assert process is not None
        code = process.returncode
        process.stop(grace=0)  # the main process is gone: take the rest of the container along
        if code is None:
            code = process.returncode if process.returncode is not None else -signal.SIGKILL
        exit_code = code if code >= 0 else 128 - code
        container.state = ContainerState(
            "terminated",
            "Completed" if exit_code == 0 else "Error",
            exit_code,
            container.state.started_at,
            self._clock(),
        )
        container.last_state = container.state
        if not container.init:
            self._started = False
            self._set_ready(False)
        self._notify()

    def _restart_wanted(self) -> bool:
        policy = self.spec.restart_policy
        if policy == "Always":
            return True
        return policy == "OnFailure" and self._app.state.exit_code != 0

    def _set_ready(self, ready: bool) -> None:
        if ready and self.deleting:
            ready = False
        if ready == self._ready:
            return
        self._ready = ready
        self._ready_since = self._clock() if ready else None
        for observer in list(self._observers):
            try:
                observer(self, ready)
            except Exception:
                _log.exception("readiness observer of pod %s/%s failed", self.namespace, self.name)
        self._notify()

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _terminate(self, grace_period_seconds: int | None) -> None:
        self._deletion_timestamp = self._clock()
        if grace_period_seconds is not None:
            self._deletion_grace = grace_period_seconds * self.spec.time_scale
        self._set_ready(False)
        self._deletion_requested.set()
        try:
            if self._supervisor is not None:
                await self._supervisor
        finally:
            self._stop_processes_now()
            if self._sampler is not None:
                self._sampler.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._sampler
            if self.ip is not None:
                self._addresses.release(self.ip)
            self._deleted = True
            self._notify()

    def _stop_processes_now(self) -> None:
        for container in self._containers():
            if container.process is not None:
                container.process.stop(grace=0)

    async def _sample_periodically(self, interval: float) -> None:
        while True:
            self.sample_memory()
            await asyncio.sleep(interval)  # the sampling period


def _state_text(state: ContainerState) -> str:
    """``waiting (CrashLoopBackOff)``, for evidence lines."""
    return state.state + (f" ({state.reason})" if state.reason else "")
