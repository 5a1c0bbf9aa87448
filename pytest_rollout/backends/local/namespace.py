"""One test's namespace on the local backend: its objects, controllers and pods.

:class:`LocalNamespace` applies manifests (Service, HTTPRoute, analysis templates, Deployment,
Rollout) once :mod:`.admission` has checked them, releases variants, waits for rollouts, and
tears everything down again. Pods are registered with the cluster's Prometheus as soon as they
have an address and become router endpoints only when Ready, after the endpoint delay.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import os
import shutil
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_rollout.backends.base import EventView, ResourceSample, RollbackAllowance, RolloutHandle
from pytest_rollout.backends.local.admission import (
    POD_SPEC_PATH,
    admission_order,
    check_pod_template,
)
from pytest_rollout.backends.local.commands import local_command
from pytest_rollout.backends.local.events import Event
from pytest_rollout.backends.local.failures import FailureLatch
from pytest_rollout.backends.local.networking import HTTPRoute, Service, ready_endpoints
from pytest_rollout.backends.local.pod_spec import ContainerSpec, PodSpec
from pytest_rollout.backends.local.pod_status import Launch, PodStatus
from pytest_rollout.backends.local.pods import Pod
from pytest_rollout.backends.local.resources import sample_resources
from pytest_rollout.backends.local.rollouts import HASH_LABEL, LocalRolloutHandle, RolloutController
from pytest_rollout.backends.local.scrape import pod_annotations, scrape_target
from pytest_rollout.backends.local.workloads import DeploymentController
from pytest_rollout.clock import epoch_now
from pytest_rollout.config import Variant
from pytest_rollout.engine.analysis import AnalysisTemplate, JobLaunch, Providers
from pytest_rollout.engine.status import Phase
from pytest_rollout.errors import ConfigError, WaitTimeout
from pytest_rollout.manifests import Manifest

if TYPE_CHECKING:
    from pytest_rollout.backends.local.cluster import LocalCluster

_CALL_TIMEOUT = 60.0


class LocalNamespace:
    """One test's namespace: its objects, controllers and pods."""

    def __init__(self, cluster: LocalCluster, name: str) -> None:
        self.cluster = cluster
        self.namespace = name
        self.recorder = cluster.events
        self.data_dir = cluster.workdir / "namespaces" / name / "data"
        self.log_dir = cluster.workdir / "namespaces" / name / "logs"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.created_at = epoch_now()
        self.services: dict[str, Service] = {}
        self.routes: dict[str, HTTPRoute] = {}
        self.deployments: dict[str, DeploymentController] = {}
        self.rollouts: dict[str, RolloutController] = {}
        self.analysis_templates: dict[str, AnalysisTemplate] = {}
        self.pods: dict[str, Pod] = {}
        self._selectors: dict[str, Mapping[str, str]] = {}
        self.providers = Providers(
            resolve_url=lambda url: cluster.resolve_url(url, name),
            job_launcher=self._launch_job,
            job_log_dir=self.log_dir / "jobs",
        )
        self.failure = FailureLatch()
        """Failures of the namespace's controllers, pods and router updates: the waits of the
        namespace fail at once with the first one."""
        self._controller_tasks: list[asyncio.Task[None]] = []
        self._deletions: set[asyncio.Task[None]] = set()
        self._deleted = False

    def __repr__(self) -> str:
        return f"<LocalNamespace {self.namespace}>"

    @property
    def name(self) -> str:
        return self.namespace

    @property
    def rollback_allowance(self) -> RollbackAllowance:
        return self.cluster.rollback_allowance

    # -- the synchronous API (test thread) --

    def apply(self, manifests: Iterable[Manifest]) -> None:
        """Create the objects; Services first, then routes, then workloads (as kubectl would
        accept them in any order, but endpoints exist from the first Ready pod). Every object
        is checked before the first is created."""
        for manifest in admission_order(manifests):
            self._call(self._apply_one(manifest), f"apply {manifest.kind}/{manifest.name}")

    def release(self, workload: str, variant: Variant) -> None:
        """Roll a Deployment or Rollout to ``variant`` (a changed pod template, as
        ``kubectl apply``)."""
        controller = self._workload(workload)
        kind = "Rollout" if isinstance(controller, RolloutController) else "Deployment"
        current = (
            controller.rollout.spec.template
            if isinstance(controller, RolloutController)
            else controller.template
        )
        template = copy.deepcopy(dict(current))
        template["spec"] = variant.apply(template["spec"])
        self._validate_pod_template(template, f"variant {variant.name!r} of {kind}/{workload}")

        async def change() -> None:
            controller.set_template(template)

        self._call(change(), f"release {variant.name} to {kind}/{workload}")

    def wait_rolled_out(self, workload: str, *, timeout: float) -> None:
        """Wait until every replica runs the current template and is available (a Rollout:
        Healthy with the current template stable)."""
        controller = self._workload(workload)
        if isinstance(controller, RolloutController):
            self._wait(
                controller.wait_for(
                    lambda s: (
                        s.phase == Phase.HEALTHY
                        and bool(s.stable_rs)
                        and s.stable_rs == s.current_pod_hash
                    )
                ),
                f"Rollout/{workload} to finish rolling out",
                timeout,
            )
            return
        try:
            self._wait(
                controller.wait_complete(), f"Deployment/{workload} to finish rolling out", timeout
            )
        except WaitTimeout as exc:
            status = controller.status()
            raise WaitTimeout(
                f"{exc}; status: {status.updated_replicas}/{status.replicas} updated, "
                f"{status.available_replicas} available; recent events: "
                + " | ".join(self.event_lines()[-5:])
            ) from exc

    def rollout(self, name: str) -> RolloutHandle:
        controller = self.rollouts.get(name)
        if controller is None:
            raise ConfigError(
                f"no Rollout {name!r} in namespace {self.namespace} "
                f"(rollouts: {', '.join(sorted(self.rollouts)) or 'none'})"
            )
        return LocalRolloutHandle(
            controller,
            lambda coro, what, timeout: self._wait(coro, what, timeout),
            self.recorder,
        )

    def route_url(self, route: str) -> str:
        """The client-facing URL of an HTTPRoute (its Gateway listener)."""
        if route not in self.routes:
            raise ConfigError(
                f"no HTTPRoute {route!r} in namespace {self.namespace} "
                f"(routes: {', '.join(sorted(self.routes)) or 'none'})"
            )
        return self.cluster.router.route_url(self.routes[route].route)

    def service_url(self, service: str) -> str:
        """The Service's in-cluster address (its own proxy port), e.g. for smoke checks."""
        if service not in self.services:
            raise ConfigError(f"no Service {service!r} in namespace {self.namespace}")
        return self.cluster.router.route_url(_service_route(self.services[service]))

    def pod_statuses(self) -> list[PodStatus]:
        return [pod.status() for pod in list(self.pods.values())]

    def namespace_events(self) -> list[Event]:
        return self.recorder.events(namespace=self.namespace)

    def events(self) -> list[EventView]:
        """The namespace's events, oldest first."""
        return [
            EventView(e.timestamp, e.type, e.reason, e.message, e.involved.kind, e.involved.name)
            for e in self.namespace_events()
        ]

    def event_lines(self) -> list[str]:
        """The namespace's events, times relative to the namespace's creation."""
        return self.recorder.lines(self.namespace_events(), origin=self.created_at)

    def resources(self) -> ResourceSample:
        """The namespace's pods, Ready or not, and the RSS of each one's process tree."""
        return sample_resources(list(self.pods.values()))

    def capture(self, destination: Path) -> None:
        """Copy every pod's logs and the namespace's events under ``destination``."""
        destination.mkdir(parents=True, exist_ok=True)
        (destination / "events.log").write_text("\n".join(self.event_lines()) + "\n")
        if self.log_dir.exists():
            shutil.copytree(self.log_dir, destination / "pods", dirs_exist_ok=True)
        lines = [
            f"{s.name} phase={s.phase.value} ready={s.ready} restarts={s.restart_count} ip={s.ip}"
            for s in self.pod_statuses()
        ]
        (destination / "pods.txt").write_text("\n".join(lines) + "\n")

    def delete(self) -> None:
        """Delete everything in the namespace: controllers stop, pods terminate gracefully,
        routes and pools leave the router. Idempotent."""
        if self._deleted:
            return
        self._deleted = True
        if self.cluster.loop.running:
            self._call(self._delete_all(), f"delete namespace {self.namespace}", timeout=120)
        publisher = self.cluster.publisher
        if publisher is not None and self.cluster.router.running():
            publisher.run(self._leave_router).result()
        self.cluster.namespaces.pop(self.namespace, None)
        shutil.rmtree(self.data_dir.parent / "data", ignore_errors=True)

    def _leave_router(self) -> None:
        router = self.cluster.router
        for route in self.routes.values():
            router.remove_route(route.route)
        for service in self.services.values():
            router.remove_route(_service_route(service))
            router.remove_pool(service.pool)

    # -- on the loop --

    async def _apply_one(self, manifest: Manifest) -> None:
        publisher = self.cluster.require_publisher()
        router = self.cluster.router
        if manifest.kind == "Service":
            service = Service.from_manifest(manifest, self.namespace)
            self.services[service.name] = service
            await asyncio.wrap_future(publisher.run(lambda: router.ensure_pool(service.pool)))
            await asyncio.wrap_future(
                publisher.run(
                    lambda: router.ensure_route(_service_route(service), [(service.pool, 1)])
                )
            )
            publisher.publish_endpoints(
                service.pool, ready_endpoints(service, self.pods.values()), self.failure
            )
        elif manifest.kind == "HTTPRoute":
            route = HTTPRoute.from_manifest(manifest, self.namespace)
            for backend in route.backends:
                if backend.service not in self.services:
                    raise manifest.error(
                        ("spec", "rules", 0, "backendRefs"),
                        f"Service {backend.service!r} does not exist in the manifests applied",
                    )
            self.routes[route.name] = route
            backends = [(route.pool(b.service), b.weight) for b in route.backends]
            await asyncio.wrap_future(
                publisher.run(lambda: router.ensure_route(route.route, backends))
            )
        elif manifest.kind == "AnalysisTemplate":
            self.analysis_templates[manifest.name] = AnalysisTemplate.from_manifest(manifest)
        elif manifest.kind == "ClusterAnalysisTemplate":
            self.cluster.cluster_templates[manifest.name] = AnalysisTemplate.from_manifest(manifest)
        elif manifest.kind == "Rollout":
            if manifest.name in self.rollouts or manifest.name in self.deployments:
                raise manifest.error((), "already exists in this namespace")
            rollout = RolloutController(self, manifest, time_scale=self.cluster.time_scale)
            self._validate_pod_template(
                rollout.rollout.spec.template, str(manifest.origin), manifest
            )
            rollout.check_references(self.services, self.routes)
            self.rollouts[manifest.name] = rollout
            self._controller_tasks.append(
                asyncio.create_task(rollout.run(), name=f"rollout {self.namespace}/{manifest.name}")
            )
        else:
            if manifest.name in self.deployments or manifest.name in self.rollouts:
                raise manifest.error((), "already exists in this namespace")
            controller = DeploymentController(self, manifest, time_scale=self.cluster.time_scale)
            self._validate_pod_template(controller.template, str(manifest.origin), manifest)
            self.deployments[manifest.name] = controller
            self._controller_tasks.append(
                asyncio.create_task(
                    controller.run(), name=f"deployment {self.namespace}/{manifest.name}"
                )
            )

    # -- what the Rollout controller asks of its namespace (on the loop) --

    def analysis_template(self, name: str, *, cluster_scope: bool) -> AnalysisTemplate:
        found = (self.cluster.cluster_templates if cluster_scope else self.analysis_templates).get(
            name
        )
        if found is None:
            kind = "ClusterAnalysisTemplate" if cluster_scope else "AnalysisTemplate"
            raise ConfigError(f'{kind}.argoproj.io "{name}" not found')
        return found

    def set_service_hash(self, service: str, pod_hash: str) -> None:
        """Point a Service at one ReplicaSet, as Argo does with the stable and canary Services."""
        current = self.services[service]
        base = self._selectors.setdefault(service, dict(current.selector))
        updated = dataclasses.replace(current, selector={**base, HASH_LABEL: pod_hash})
        self.services[service] = updated
        publisher = self.cluster.require_publisher()
        publisher.publish_endpoints(
            updated.pool, ready_endpoints(updated, self.pods.values()), self.failure
        )

    def set_route_weights(self, route: str, weights: Mapping[str, int]) -> None:
        """Set an HTTPRoute's backend weights by Service name (the Gateway API plugin's job)."""
        state = self.routes[route]
        self.cluster.require_publisher().publish_weights(
            state.route,
            {state.pool(service): weight for service, weight in weights.items()},
            self.failure,
        )

    def _launch_job(self, container: Mapping[str, Any]) -> JobLaunch:
        """Run an analysis Job's container as a local process, mapped like a pod's."""
        env = {
            str(e["name"]): str(e.get("value", ""))
            for e in container.get("env") or []
            if isinstance(e, dict) and "name" in e
        }
        command = local_command(
            self.cluster.target,
            str(container.get("image", "")),
            host="127.0.0.1",
            port=None,
            ports={},
            data_dir=self.data_dir,
            container_env=env,
            command=[str(c) for c in container.get("command") or []],
            args=[str(a) for a in container.get("args") or []],
            prometheus_url=self.cluster.prometheus_url(),
        )
        return JobLaunch(
            command.argv,
            env={**os.environ, "PATH": _interpreter_path(), **command.env},
            cwd=command.cwd,
        )

    async def create_pod(
        self, name: str, template: Mapping[str, Any], labels: Mapping[str, str]
    ) -> Pod:
        spec = PodSpec.from_manifest(
            template["spec"], path=POD_SPEC_PATH, time_scale=self.cluster.time_scale
        )
        pod = Pod(
            name,
            self.namespace,
            spec,
            resolver=self._resolve,
            events=self.recorder,
            log_dir=self.log_dir,
            labels=labels,
            failure_parent=self.failure,
        )
        pod.add_readiness_observer(self._readiness_changed)
        self.pods[name] = pod
        await pod.start()
        self.cluster.pod_started(
            pod, scrape_target(pod.ip, pod.spec.container.port_numbers, pod_annotations(template))
        )
        return pod

    def retire_pod(self, pod: Pod) -> None:
        task = asyncio.create_task(
            self._retire(pod), name=f"delete pod {self.namespace}/{pod.name}"
        )
        self._deletions.add(task)
        task.add_done_callback(self._deletions.discard)

    async def _retire(self, pod: Pod) -> None:
        try:
            await pod.delete()
        finally:
            self.pods.pop(pod.name, None)
            self.cluster.pod_gone(pod)
            self._poke_controllers()

    def _readiness_changed(self, pod: Pod, ready: bool) -> None:
        publisher = self.cluster.publisher
        if publisher is not None:
            for service in self.services.values():
                if service.selects(pod.labels):
                    publisher.publish_endpoints(
                        service.pool, ready_endpoints(service, self.pods.values()), self.failure
                    )
        self._poke_controllers()

    def _poke_controllers(self) -> None:
        for deployment in self.deployments.values():
            deployment.poke()
        for rollout in self.rollouts.values():
            rollout.poke()

    async def _delete_all(self) -> None:
        for task in self._controller_tasks:
            task.cancel()
        await asyncio.gather(*self._controller_tasks, return_exceptions=True)
        for rollout in self.rollouts.values():
            await rollout.stop()
        self.providers.close()
        for pod in list(self.pods.values()):
            if not pod.deleting:
                self.retire_pod(pod)
        await asyncio.gather(*list(self._deletions), return_exceptions=True)
        # Endpoint updates still on their way would otherwise recreate the pools removed next.
        publisher = self.cluster.publisher
        if publisher is not None:
            publisher.flush()

    def _resolve(self, container: ContainerSpec, pod_ip: str) -> Launch:
        ports = container.port_numbers
        command = local_command(
            self.cluster.target,
            container.image,
            host=pod_ip,
            port=ports[0] if ports else None,
            ports=container.named_ports,
            data_dir=self.data_dir,
            container_env={},
            command=container.command,
            args=container.args,
            prometheus_url=self.cluster.prometheus_url(),
        )
        env = dict(command.env)
        env["PATH"] = _interpreter_path()
        return Launch(argv=command.argv, env=env, cwd=command.cwd)

    # -- helpers --

    def _validate_pod_template(
        self, template: Mapping[str, Any], where: str, manifest: Manifest | None = None
    ) -> None:
        check_pod_template(
            template,
            self.cluster.target,
            time_scale=self.cluster.time_scale,
            where=where,
            manifest=manifest,
        )

    def _deployment(self, name: str) -> DeploymentController:
        try:
            return self.deployments[name]
        except KeyError:
            raise ConfigError(
                f"no Deployment {name!r} in namespace {self.namespace} "
                f"(deployments: {', '.join(sorted(self.deployments)) or 'none'})"
            ) from None

    def _workload(self, name: str) -> DeploymentController | RolloutController:
        found = self.deployments.get(name) or self.rollouts.get(name)
        if found is None:
            known = sorted([*self.deployments, *self.rollouts])
            raise ConfigError(
                f"no Deployment or Rollout {name!r} in namespace {self.namespace} "
                f"(workloads: {', '.join(known) or 'none'})"
            )
        return found

    def _call(self, coro: Any, what: str, timeout: float = _CALL_TIMEOUT) -> Any:
        return self.cluster.loop.call(coro, timeout=timeout, what=what)

    def _wait(self, coro: Any, what: str, timeout: float = _CALL_TIMEOUT) -> Any:
        """:meth:`_call` for a wait: it fails at once with a failure of the namespace's
        machinery (see :attr:`failure`) instead of running into its deadline."""
        return self._call(self.failure.guard(coro), what, timeout)


def _service_route(service: Service) -> str:
    return f"{service.pool}/service"


def _interpreter_path() -> str:
    """``PATH`` with this interpreter's directory first: the image's interpreter is what
    ``python`` means inside a container."""
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
