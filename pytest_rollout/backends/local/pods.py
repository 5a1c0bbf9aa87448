"""Pods as real processes: the local backend's kubelet.

A :class:`Pod` runs the one container of a pod template (:mod:`.pod_spec`), after its init
containers, as local processes on its own 127.x.y.z pod IP, and gives them the kubelet's
lifecycle; :mod:`.container_runtime` starts and kills each container, :mod:`.pod_status` holds
what is kept of them. What is followed, and where it comes from:

* Start: event ``Scheduled`` ("Successfully assigned ns/pod to local", from
  default-scheduler), then the runtime's ``Pulled`` and ``Created``, then ``Started`` ("Started
  container x"). Phase Pending -> Running once the process runs.
* Init containers (``spec.initContainers``; the kubelet's ``computePodActions`` and ``SyncPod``
  in ``pkg/kubelet/kuberuntime/kuberuntime_manager.go``, ``getPhase`` in ``kubelet_pods.go``,
  and the "Init Containers" concept page): they run one at a time, in spec order, each to
  completion, before the app container is created, with the same events. Exit 0 starts the
  next one. A failure restarts the same init container -- through its own CrashLoopBackOff
  entry, as ``doBackOff`` keys back-off by container -- when ``restartPolicy`` is Always or
  OnFailure (under Always an init container behaves as OnFailure); under Never the pod fails
  (phase Failed). Until every init container has succeeded the pod is Pending, not Ready, and
  its app container waits in ``PodInitializing``. Deleting the pod meanwhile kills the running
  init container like any other.
* Probes: :mod:`.probes` (startup gates readiness and liveness). Ready follows the readiness
  probe; without one the container is Ready as soon as its process runs (and any startup probe
  has succeeded). Every failed probe records ``Unhealthy`` ("Readiness probe failed: ...").
* Restarts (``restartPolicy`` Always / OnFailure / Never): a liveness or startup failure kills
  the container (``Killing``: "Container x failed liveness probe, will be restarted"); a
  container that exits by itself is restarted too. Restarts wait out the CrashLoopBackOff with
  a ``BackOff`` warning ("Back-off restarting failed container x in pod name_ns(uid)");
  ``restartCount`` counts them.
* Termination: on deletion Ready turns false at once and observers hear of it, then the
  container is killed (``Killing``: "Stopping container x") within the grace period counted
  from the start of deletion. ``terminationGracePeriodSeconds`` defaults to 30; a
  liveness/startup probe's own ``terminationGracePeriodSeconds`` applies to its kills.
* Memory: the resident set of the running containers' processes (an init container's while it
  runs), sampled periodically and on demand; the peak over the pod's life is kept.
* Logs: each run of each container writes ``<pod dir>/<container>/<restartCount>.log``, as
  under /var/log/pods.

The command comes from a resolver the caller passes (the image -> argv mapping is
configuration); the environment is :func:`.pod_spec.container_environment`.

Concurrency: a pod lives on one asyncio loop (the caller runs it, e.g. in a background thread);
its coroutines must be awaited on that loop. ``status()``, ``sample_memory()`` and the read-only
properties may be called from any thread. Readiness observers are called on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import threading
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

from pytest_rollout.backends.local import events as ev
from pytest_rollout.backends.local.addresses import AddressAllocator, default_allocator
from pytest_rollout.backends.local.container_runtime import ContainerRuntime
from pytest_rollout.backends.local.events import EventRecorder, ObjectRef
from pytest_rollout.backends.local.failures import FailureLatch
from pytest_rollout.backends.local.pod_spec import (
    NODE_NAME,
    PodSpec,
    container_environment,
)
from pytest_rollout.backends.local.pod_status import (
    BACKOFF_INITIAL_SECONDS,
    BACKOFF_MAX_SECONDS,
    CommandResolver,
    ContainerRecord,
    ContainerState,
    MemoryUsage,
    PodPhase,
    PodStatus,
    RestartBackoff,
    describe_status,
    session_rss,
)
from pytest_rollout.backends.local.probes import (
    ContainerHealth,
    HealthChange,
    ProbeKind,
    ProbeTarget,
    execute,
    wait_for_exit,
)
from pytest_rollout.clock import epoch_now
from pytest_rollout.errors import ProcessError, RolloutError, WaitTimeout

ReadinessObserver = Callable[["Pod", bool], None]


class _Stop(enum.Enum):
    EXITED = "exited"
    DELETED = "deleted"
    PROBE_FAILED = "probe-failed"


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
        failure_parent: FailureLatch | None = None,
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
        self._runtime = ContainerRuntime(self.ref, events, clock, time_scale=spec.time_scale)
        self.failure = FailureLatch(parent=failure_parent)
        """Failures of the pod's probe loops, readiness observers and supervision; ``wait_ready``
        raises them. ``failure_parent`` (the namespace's) hears of them too."""

        def backoff() -> RestartBackoff:
            return RestartBackoff(
                BACKOFF_INITIAL_SECONDS * spec.time_scale, BACKOFF_MAX_SECONDS * spec.time_scale
            )

        initializing = ContainerState("waiting", "PodInitializing")
        self._inits = tuple(
            ContainerRecord(container, initializing, backoff(), init=True)
            for container in spec.init_containers
        )
        self._app = ContainerRecord(
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
                container.env = container_environment(
                    container.spec,
                    pod=self.name,
                    namespace=self.namespace,
                    uid=self.uid,
                    pod_ip=ip,
                    added=launch.env,
                )
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
        """Wait until the pod is Ready; WaitTimeout (with the pod's state and events) if not,
        BackendError at once if the pod's own machinery failed (see :attr:`failure`)."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    self.failure.raise_if_failed()
                    if self._ready:
                        return
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
        warnings = self._events.events(
            kind="Pod", name=self.name, namespace=self.namespace, type=ev.WARNING
        )
        return describe_status(self.status(), self._events.lines(warnings[-3:]))

    # -- internals --

    def _containers(self) -> tuple[ContainerRecord, ...]:
        """Every container of the pod, init containers first, in the order they run."""
        return (*self._inits, self._app)

    def _log_path(self, container: ContainerRecord) -> Path:
        return self._dir / container.spec.name / f"{container.restart_count}.log"

    async def _supervise(self) -> None:
        try:
            if await self._initialize():
                await self._run_app()
        except Exception as exc:
            self._fail(exc, f"the supervision of pod {self.namespace}/{self.name}")
            raise
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

    async def _wait_for_exit_or_deletion(self, container: ContainerRecord) -> bool:
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

    async def _back_off(self, container: ContainerRecord) -> bool:
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

    def _start_container(self, container: ContainerRecord) -> bool:
        launched = self._runtime.start(container, self._log_path(container))
        if launched:
            if not container.init:
                self._phase = PodPhase.RUNNING
            self._events.normal(self.ref, ev.STARTED, f"Started container {container.spec.name}")
        self._notify()
        return launched

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
        except Exception as exc:
            self._fail(exc, f"the {kind.value} probe loop of pod {self.namespace}/{self.name}")
            raise

    async def _kill(
        self, container: ContainerRecord, message: str, grace: float, *, since: float
    ) -> None:
        await self._runtime.kill(container, message, grace, since=since, target=self._target)

    def _container_finished(self, container: ContainerRecord) -> None:
        self._runtime.finished(container)
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
            except Exception as exc:  # the other observers still hear of the change
                self._fail(exc, f"a readiness observer of pod {self.namespace}/{self.name}")
        self._notify()

    def _fail(self, error: Exception, what: str) -> None:
        """Keep a failure of the pod's own machinery; waits on the pod fail with it at once."""
        self.failure.record(error, what)
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
