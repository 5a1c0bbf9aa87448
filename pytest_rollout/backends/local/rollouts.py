"""The Argo Rollouts controller of the local backend: the pure engine, applied.

:func:`pytest_rollout.engine.strategies.step` decides (ReplicaSet sizes, Service selectors,
traffic weight, AnalysisRuns, events) for a canary or a blueGreen Rollout; this module observes
the real pods and runs, calls it, and acts on its decision with real processes, HAProxy and
AnalysisRuns measuring real Prometheus and HTTP.

What a cluster would do between the controller and the data plane is mirrored: a Service's
selector change and the HTTPRoute's weight change both reach the router after the endpoint
delay, in the order they were made, as the Gateway's own reconciliation does. A canary
without traffic routing and a blueGreen Rollout change no weights: their traffic follows the
Services' selectors (the active Service of a blueGreen Rollout; any Service selecting every pod
of a basic canary, which spreads requests over both ReplicaSets' Ready pods).
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
from collections.abc import Callable, Collection, Mapping
from typing import Any, Protocol

from pytest_rollout.backends.base import (
    AnalysisRunView,
    EventView,
    MeasurementView,
    MetricView,
    RolloutView,
)
from pytest_rollout.backends.local.events import EventRecorder, ObjectRef
from pytest_rollout.backends.local.workloads import PodHost, ReplicaSet, control_loop, resize
from pytest_rollout.clock import epoch_now
from pytest_rollout.engine import status as rollout_status
from pytest_rollout.engine import strategies
from pytest_rollout.engine.analysis import AnalysisRun, AnalysisTemplate, Argument, Providers
from pytest_rollout.engine.rollout_model import parse_rollout
from pytest_rollout.engine.status import (
    AnalysisRunRequest,
    Decision,
    Observations,
    PodCounts,
    ReplicaSetState,
    RolloutStatus,
    RunObservation,
    service_selectors,
)
from pytest_rollout.errors import ConfigError, WaitTimeout
from pytest_rollout.manifests import Manifest

ROLLOUTS_CONTROLLER = "rollouts-controller"
HASH_LABEL = "rollouts-pod-template-hash"
_MAX_PASSES = 20


class RolloutHost(PodHost, Protocol):
    """What the Rollout controller needs from its namespace beyond pods."""

    def set_service_hash(self, service: str, pod_hash: str) -> None: ...

    def set_route_weights(self, route: str, weights: Mapping[str, int]) -> None: ...

    def analysis_template(self, name: str, *, cluster_scope: bool) -> AnalysisTemplate: ...

    providers: Providers


class RolloutController:
    """One Rollout: its ReplicaSets, AnalysisRuns and status, reconciled on the loop."""

    def __init__(self, host: RolloutHost, manifest: Manifest, *, time_scale: float = 1.0) -> None:
        self.host = host
        self.manifest = manifest
        self.rollout = parse_rollout(manifest)
        self.name = self.rollout.name
        self.ref = ObjectRef("Rollout", self.name, host.namespace)
        self.time_scale = time_scale
        self.status = RolloutStatus()
        self.templates: dict[str, dict[str, Any]] = {
            self.rollout.pod_template_hash: copy.deepcopy(dict(self.rollout.spec.template))
        }
        self.replica_sets: dict[str, ReplicaSet] = {}
        self.runs: dict[str, AnalysisRun] = {}
        self._run_tasks: dict[str, asyncio.Task[Any]] = {}
        self._commands: list[Callable[[RolloutStatus], RolloutStatus]] = []
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self._selectors: dict[str, str] = {}
        self._weight = 0

    def check_references(self, services: Collection[str], routes: Collection[str]) -> None:
        """The Services, HTTPRoute and analysis templates the Rollout names exist."""
        spec, manifest = self.rollout.spec, self.manifest
        strategy = "blueGreen" if spec.blue_green is not None else "canary"
        for field, service in spec.services.items():
            if service not in services:
                raise manifest.error(
                    ("spec", "strategy", strategy, field),
                    f"Service {service!r} not found in the manifests applied",
                )
        routing = spec.canary.traffic_routing if spec.canary is not None else None
        if routing is not None and routing.http_route not in routes:
            raise manifest.error(
                ("spec", "strategy", "canary", "trafficRouting"),
                f"HTTPRoute {routing.http_route!r} not found in the manifests applied",
            )
        for analysis in spec.analyses:
            for ref in analysis.templates:
                self.host.analysis_template(ref.template_name, cluster_scope=ref.cluster_scope)

    # -- spec changes and commands (on the loop) --

    def set_template(self, template: Mapping[str, Any]) -> None:
        """A new pod template: what ``kubectl apply`` of a changed Rollout does."""
        body = copy.deepcopy(dict(self.manifest.body))
        body["spec"]["template"] = copy.deepcopy(dict(template))
        self.manifest = dataclasses.replace(self.manifest, body=body)
        self.rollout = parse_rollout(self.manifest)
        self.templates.setdefault(self.rollout.pod_template_hash, copy.deepcopy(dict(template)))
        self.poke()

    def command(self, change: Callable[[RolloutStatus], RolloutStatus]) -> None:
        self._commands.append(change)
        self.poke()

    def poke(self) -> None:
        self._wake.set()

    # -- the control loop --

    async def run(self) -> None:
        await control_loop(self.reconcile, self._wake, self._failed)

    def _failed(self, exc: Exception) -> None:
        self.host.recorder.warning(
            self.ref, "ReconcileError", f"{type(exc).__name__}: {exc}", source=ROLLOUTS_CONTROLLER
        )

    async def reconcile(self) -> float | None:
        for change in self._commands:
            self.status = change(self.status)
        self._commands.clear()
        wake_at = None
        for _ in range(_MAX_PASSES):
            now = epoch_now()
            decision = strategies.step(self.status, self.rollout, self._observe(now), now)
            await self._apply(decision)
            self.status = decision.status
            wake_at = decision.wake_at
            if not decision.changed:
                break
        self._changed.set()
        self._changed = asyncio.Event()
        return wake_at

    def _observe(self, now: float) -> Observations:
        min_ready = self.rollout.spec.min_ready_seconds * self.time_scale
        pods = {}
        for pod_hash, rs in self.replica_sets.items():
            rs.pods = [pod for pod in rs.pods if not pod.deleted]
            pods[pod_hash] = PodCounts(rs.replicas, rs.ready(), rs.available(min_ready, now))
        runs = {name: RunObservation(run.phase, run.message) for name, run in self.runs.items()}
        return Observations(pods, runs)

    async def _apply(self, decision: Decision) -> None:
        for event in decision.events:
            record = (
                self.host.recorder.warning if event.type == "Warning" else self.host.recorder.normal
            )
            record(self.ref, str(event.reason), event.message, source=ROLLOUTS_CONTROLLER)
        for state in decision.replica_sets:
            rs = self.replica_sets.get(state.pod_hash) or self._create_replica_set(state)
            if rs.replicas != state.replicas:
                await resize(self.host, rs, state.replicas)
        for name in decision.deleted_replica_sets:
            for pod_hash, rs in list(self.replica_sets.items()):
                if rs.name == name:
                    await resize(self.host, rs, 0)
                    del self.replica_sets[pod_hash]
        self._route(decision.status)
        for name in decision.terminate_runs:
            run = self.runs.get(name)
            if run is not None:
                run.terminate()
        for request in decision.start_runs:
            self._start_run(request)

    def _create_replica_set(self, state: ReplicaSetState) -> ReplicaSet:
        template = self.templates[state.pod_hash]
        labels = dict((template.get("metadata") or {}).get("labels") or {})
        labels[HASH_LABEL] = state.pod_hash
        rs = ReplicaSet(state.name, state.pod_hash, state.revision, copy.deepcopy(template), labels)
        self.replica_sets[state.pod_hash] = rs
        return rs

    def _route(self, status: RolloutStatus) -> None:
        """Services to their ReplicaSets first, then the HTTPRoute's weights (traffic-routed
        canary only), each change once."""
        for service, pod_hash in service_selectors(self.rollout, status).items():
            if self._selectors.get(service) != pod_hash:
                self.host.set_service_hash(service, pod_hash)
                self._selectors[service] = pod_hash
        strategy = self.rollout.spec.canary
        if strategy is None or strategy.traffic_routing is None or status.weights is None:
            return
        weight = status.weights.canary
        if weight != self._weight and strategy.canary_service and strategy.stable_service:
            self.host.set_route_weights(
                strategy.traffic_routing.http_route,
                {strategy.stable_service: 100 - weight, strategy.canary_service: weight},
            )
            self._weight = weight

    def _start_run(self, request: AnalysisRunRequest) -> None:
        templates = [
            self.host.analysis_template(ref.template_name, cluster_scope=ref.cluster_scope)
            for ref in request.analysis.templates
        ]
        values = self.rollout.resolve_arguments(
            request.analysis.args,
            namespace=self.host.namespace,
            stable_hash=request.stable_hash,
            latest_hash=request.latest_hash,
        )
        run = AnalysisRun(
            request.name,
            templates,
            [Argument(name, value) for name, value in values.items()],
            providers=self.host.providers,
        )
        run.subscribe(lambda _event: self.poke())
        self.runs[request.name] = run
        self._run_tasks[request.name] = asyncio.create_task(
            run.run(), name=f"analysisrun {request.name}"
        )

    async def stop(self) -> None:
        for run in self.runs.values():
            run.terminate()
        await asyncio.gather(*self._run_tasks.values(), return_exceptions=True)

    # -- observation (any thread) --

    def view(self) -> RolloutView:
        status = self.status
        weights = status.weights
        return RolloutView(
            name=self.name,
            phase=str(status.phase),
            message=status.message,
            current_step_index=status.current_step_index,
            canary_weight=weights.canary if weights is not None else 0,
            stable_hash=status.stable_rs or None,
            canary_hash=status.current_pod_hash or None,
            aborted=status.abort,
            active_hash=status.active_selector or None,
            preview_hash=status.preview_selector or None,
        )

    def run_views(self) -> list[AnalysisRunView]:
        return [analysis_run_view(run) for run in list(self.runs.values())]

    async def wait_for(self, predicate: Callable[[RolloutStatus], bool]) -> RolloutView:
        while not predicate(self.status):
            await self._changed.wait()
        return self.view()


def analysis_run_view(run: AnalysisRun) -> AnalysisRunView:
    """The backend-neutral view of a local AnalysisRun, with its resolved conditions."""
    snapshot = run.status()
    conditions = {m.name: (m.success_condition, m.failure_condition) for m in run.metrics}
    return AnalysisRunView(
        snapshot.name,
        str(snapshot.phase),
        snapshot.message,
        {m.name: str(m.phase) for m in snapshot.metrics},
        tuple(
            MetricView(
                name=m.name,
                phase=str(m.phase),
                message=m.message,
                success_condition=conditions.get(m.name, ("", ""))[0],
                failure_condition=conditions.get(m.name, ("", ""))[1],
                measurements=tuple(
                    MeasurementView(str(x.phase), x.started_at, x.finished_at, x.value, x.message)
                    for x in m.measurements
                ),
            )
            for m in snapshot.metrics
        ),
        snapshot.started_at,
    )


class LocalRolloutHandle:
    """The test thread's side of one Rollout (a ``RolloutHandle``)."""

    def __init__(
        self, controller: RolloutController, call: Callable[..., Any], events: EventRecorder
    ) -> None:
        self._controller = controller
        self._call = call
        self._events = events

    @property
    def name(self) -> str:
        return self._controller.name

    def status(self) -> RolloutView:
        return self._controller.view()

    def wait_for_phase(self, phase: str, *, timeout: float) -> RolloutView:
        try:
            wanted = rollout_status.Phase(phase)
        except ValueError:
            raise ConfigError(
                f"phase {phase!r}: expected one of "
                f"{', '.join(p.value for p in rollout_status.Phase)}"
            ) from None
        try:
            result: RolloutView = self._call(
                self._controller.wait_for(lambda status: status.phase == wanted),
                f"Rollout/{self.name} to reach phase {phase}",
                timeout,
            )
            return result
        except WaitTimeout as exc:
            view = self.status()
            recent = " | ".join(f"{e.reason}: {e.message}" for e in self.events()[-6:])
            raise WaitTimeout(
                f"{exc}; it is {view.phase} ({view.message or 'no message'}), "
                f"{_position(view)}; recent events: {recent}"
            ) from exc

    def promote(self, *, full: bool = False) -> None:
        controller = self._controller
        self._command(lambda status: strategies.promote(status, controller.rollout, full=full))

    def abort(self) -> None:
        self._command(strategies.abort)

    def retry(self) -> None:
        self._command(strategies.retry)

    def events(self) -> list[EventView]:
        ref = self._controller.ref
        return [
            EventView(e.timestamp, e.type, e.reason, e.message, ref.kind, ref.name)
            for e in self._events.for_object(ref)
        ]

    def analysis_runs(self) -> list[AnalysisRunView]:
        return self._controller.run_views()

    def _command(self, change: Callable[[RolloutStatus], RolloutStatus]) -> None:
        async def send() -> None:
            self._controller.command(change)

        self._call(send(), f"command to Rollout/{self.name}", 10.0)


def _position(view: RolloutView) -> str:
    """Where an update stands, for a timeout message."""
    if view.active_hash is not None or view.preview_hash is not None:
        return f"active {view.active_hash}, preview {view.preview_hash}, stable {view.stable_hash}"
    return f"step {view.current_step_index}, canary weight {view.canary_weight}"
