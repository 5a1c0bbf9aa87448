"""One test's namespace on a real cluster, and the handle of an Argo Rollout in it.

Objects are applied with server-side apply; a release is a merge patch of the workload's pod
template; Rollout phases and steps come from the Rollout's status, events from the
``events.k8s.io/v1`` API, analysis results from the AnalysisRun objects the controller creates.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import yaml

from pytest_rollout._wait import wait_for
from pytest_rollout.backends.base import (
    AnalysisRunView,
    EventView,
    ResourceSample,
    RollbackAllowance,
    RolloutHandle,
    RolloutView,
)
from pytest_rollout.backends.kube import render, status, timing
from pytest_rollout.backends.kube.plan import FIELD_MANAGER
from pytest_rollout.backends.kube.resources import KubeObject
from pytest_rollout.config import Variant
from pytest_rollout.errors import ConfigError, PrometheusError, RolloutError, WaitTimeout
from pytest_rollout.manifests import Manifest

if TYPE_CHECKING:
    from pytest_rollout.backends.kube.api import KubeApi

ROLLOUT_API = ("argoproj.io/v1alpha1", "Rollout")
ANALYSIS_RUN_API = ("argoproj.io/v1alpha1", "AnalysisRun")
EVENT_API = ("events.k8s.io/v1", "Event")
WORKLOAD_APIS = {"Deployment": "apps/v1", "Rollout": "argoproj.io/v1alpha1"}
POSTGRES_TIMEOUT = 180.0
_POLL = 0.5
_CAPTURED_KINDS = (
    ("argoproj.io/v1alpha1", "Rollout"),
    ("argoproj.io/v1alpha1", "AnalysisRun"),
    ("argoproj.io/v1alpha1", "AnalysisTemplate"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "ReplicaSet"),
    ("v1", "Service"),
    ("gateway.networking.k8s.io/v1", "HTTPRoute"),
)


class KubeNamespace:
    """A namespace of the test's own; everything in it goes when it is deleted."""

    def __init__(
        self,
        api: KubeApi,
        name: str,
        *,
        test: str,
        env: Mapping[str, str],
        gateway_url: str,
        prometheus_url: str,
        rollback_allowance: RollbackAllowance | None = None,
        prometheus_rewrites: Mapping[str, str] | None = None,
    ) -> None:
        self.api = api
        self.namespace = name
        self.env = dict(env)
        self.gateway_url = gateway_url.rstrip("/")
        self.prometheus_url = prometheus_url.rstrip("/")
        self._rollback_allowance = rollback_allowance or timing.rollback_allowance()
        self.prometheus_rewrites = dict(prometheus_rewrites or {})
        self.origin = time.time()
        self.workloads: dict[str, str] = {}
        self.routes: set[str] = set()
        self._deleted = False
        self._postgres = render.needs_postgres(self.env)
        self._postgres_ready = False
        api.apply(render.namespace_object(name, test), field_manager=FIELD_MANAGER)
        if self._postgres:
            # Started now, waited for only when a workload needs it: the two overlap.
            for obj in render.postgres_objects(name):
                api.apply(obj, field_manager=FIELD_MANAGER)

    def __repr__(self) -> str:
        return f"<KubeNamespace {self.namespace}>"

    @property
    def name(self) -> str:
        return self.namespace

    @property
    def rollback_allowance(self) -> RollbackAllowance:
        return self._rollback_allowance

    # -- objects --

    def apply(self, manifests: Iterable[Manifest]) -> None:
        """Apply the manifests in the namespace; workloads last, so that what they refer to
        (Services, AnalysisTemplates, the HTTPRoute) exists when the controller first sees them."""
        chosen = list(manifests)
        objects = render.namespace_objects(
            chosen, self.namespace, self.env, self.prometheus_rewrites
        )
        workloads = [obj for obj in objects if obj["kind"] in render.WORKLOAD_KINDS]
        others = [obj for obj in objects if obj["kind"] not in render.WORKLOAD_KINDS]
        for obj in others:
            self.api.apply(obj, field_manager=FIELD_MANAGER)
            if obj["kind"] == "HTTPRoute":
                self.routes.add(str(obj["metadata"]["name"]))
        if workloads:
            self._wait_postgres()
        for obj in workloads:
            self.api.apply(obj, field_manager=FIELD_MANAGER)
            self.workloads[str(obj["metadata"]["name"])] = str(obj["kind"])

    def release(self, workload: str, variant: Variant) -> None:
        """Patch the workload's pod template to ``variant`` (a new revision)."""
        kind = self._kind(workload)
        live = self.api.require(WORKLOAD_APIS[kind], kind, workload, self.namespace)
        patch = render.release_patch(live, variant, self.env)
        self.api.merge_patch(WORKLOAD_APIS[kind], kind, workload, self.namespace, patch)

    def rollout(self, name: str) -> RolloutHandle:
        if self.workloads.get(name) != "Rollout":
            rollouts = sorted(n for n, k in self.workloads.items() if k == "Rollout")
            raise ConfigError(
                f"no Rollout {name!r} applied in namespace {self.namespace} "
                f"(Rollouts: {', '.join(rollouts) or 'none'})"
            )
        return KubeRolloutHandle(self, name)

    def wait_rolled_out(self, workload: str, *, timeout: float) -> None:
        """Wait until every replica runs the current template and is available. A Rollout
        that aborts, or a Deployment past its progress deadline, fails at once."""
        kind = self._kind(workload)
        api_version = WORKLOAD_APIS[kind]
        last: list[str] = [""]
        stopped: list[str] = []

        def rolled_out() -> bool:
            obj = self.api.require(api_version, kind, workload, self.namespace)
            if kind == "Rollout":
                progress = status.rollout_progress(obj)
                view = status.rollout_view(obj)
                last[0] = progress.summary
                if view.aborted and view.phase == "Degraded":
                    stopped.append(f"aborted: {view.message}")
                return progress.done or bool(stopped)
            deployment = status.deployment_progress(obj)
            last[0] = deployment.summary
            if deployment.failed:
                stopped.append(deployment.failed)
            return deployment.done or bool(stopped)

        what = f"{kind}/{workload} in {self.namespace} to finish rolling out"
        try:
            wait_for(rolled_out, what=what, timeout=timeout, interval=_POLL, retry_on=RolloutError)
        except WaitTimeout as exc:
            raise WaitTimeout(
                f"{exc}; status: {last[0]}; recent events: {' | '.join(self.event_lines()[-5:])}"
            ) from exc
        if stopped:
            raise RolloutError(
                f"{kind}/{workload} in {self.namespace} stopped rolling out: {stopped[0]}; "
                f"status: {last[0]}; recent events: {' | '.join(self.event_lines()[-5:])}"
            )

    def route_url(self, route: str) -> str:
        """The route's URL on the shared Gateway: ``http://127.0.0.1:PORT/<namespace>/<route>``."""
        if route not in self.routes:
            raise ConfigError(
                f"no HTTPRoute {route!r} applied in namespace {self.namespace} "
                f"(routes: {', '.join(sorted(self.routes)) or 'none'})"
            )
        return self.gateway_url + render.route_prefix(self.namespace, route)

    # -- observation --

    def events(self) -> list[EventView]:
        return status.sorted_events(self.api.list(*EVENT_API, self.namespace))

    def event_lines(self) -> list[str]:
        try:
            return [status.event_line(event, self.origin) for event in self.events()]
        except RolloutError as exc:
            return [f"(events unavailable: {exc})"]

    def pods(self) -> list[KubeObject]:
        return self.api.list("v1", "Pod", self.namespace)

    def memory_by_pod(self) -> dict[str, float]:
        """Working-set memory of each pod in bytes, from the kubelets' cAdvisor metrics that
        Prometheus scrapes (every 5 s). Empty until the first scrape after a pod starts."""
        query = memory_query(self.namespace)
        try:
            response = httpx.get(
                f"{self.prometheus_url}/api/v1/query", params={"query": query}, timeout=10
            )
            response.raise_for_status()
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise PrometheusError(f"query {query!r} at {self.prometheus_url}: {exc}") from exc
        return {
            str(sample["metric"].get("pod")): float(sample["value"][1])
            for sample in body.get("data", {}).get("result", [])
        }

    def resources(self) -> ResourceSample:
        """The applied workloads' pods from the API (Ready by their ``Ready`` condition; a
        terminating pod counts as not Ready) and each one's memory: the working set of its
        containers, cAdvisor's ``container_memory_working_set_bytes`` through the cluster's
        Prometheus. That lags the pods by up to a kubelet scrape interval, and a pod not yet
        scraped counts 0 bytes. (Only the query text is tested without a cluster.)"""
        pods = [pod for pod in self.pods() if workload_pod(pod, self.workloads)]
        sampled_at = time.time()
        memory = self.memory_by_pod()
        names = [str(pod["metadata"]["name"]) for pod in pods]
        ready = sum(
            1
            for pod in pods
            if status.condition_true(pod, "Ready") and not pod["metadata"].get("deletionTimestamp")
        )
        per_pod = {name: int(memory.get(name, 0.0)) for name in names}
        return ResourceSample(
            t=sampled_at,
            ready=ready,
            not_ready=len(pods) - ready,
            memory_bytes=sum(per_pod.values()),
            per_pod=per_pod,
        )

    def capture(self, destination: Path) -> None:
        """Write pod logs, events and the YAML of the Rollouts, AnalysisRuns and their
        neighbours under ``destination``. Best effort: whatever fails is listed in
        ``capture-errors.txt`` and the rest is still written."""
        destination.mkdir(parents=True, exist_ok=True)
        errors: list[str] = []
        (destination / "events.log").write_text("\n".join(self.event_lines()) + "\n")
        try:
            pods = self.pods()
        except RolloutError as exc:
            pods = []
            errors.append(f"pods: {exc}")
        (destination / "pods.txt").write_text("\n".join(status.pod_line(p) for p in pods) + "\n")
        for pod in pods:
            name = str(pod["metadata"]["name"])
            restarted = {
                str(s.get("name"))
                for key in ("initContainerStatuses", "containerStatuses")
                for s in (pod.get("status") or {}).get(key) or []
                if s.get("restartCount", 0)
            }
            for container in status.pod_containers(pod):
                target = destination / "pods" / name / f"{container}.log"
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    target.write_text(self.api.pod_log(name, self.namespace, container))
                    if container in restarted:
                        previous = self.api.pod_log(name, self.namespace, container, previous=True)
                        target.with_suffix(".previous.log").write_text(previous)
                except RolloutError as exc:
                    errors.append(f"logs of {name} [{container}]: {exc}")
        for api_version, kind in _CAPTURED_KINDS:
            try:
                objects = self.api.list(api_version, kind, self.namespace)
            except RolloutError as exc:
                errors.append(f"{kind}: {exc}")
                continue
            if objects:
                text = yaml.safe_dump_all([_without_noise(o) for o in objects], sort_keys=False)
                (destination / f"{kind.lower()}s.yaml").write_text(text)
        if errors:
            (destination / "capture-errors.txt").write_text("\n".join(errors) + "\n")

    def delete(self) -> None:
        """Delete the namespace (in the background: its pods still get their grace period).
        Idempotent."""
        if self._deleted:
            return
        self._deleted = True
        self.api.delete("v1", "Namespace", self.namespace)

    # -- helpers --

    def _kind(self, workload: str) -> str:
        try:
            return self.workloads[workload]
        except KeyError:
            raise ConfigError(
                f"no Deployment or Rollout {workload!r} applied in namespace {self.namespace} "
                f"(workloads: {', '.join(sorted(self.workloads)) or 'none'})"
            ) from None

    def _wait_postgres(self) -> None:
        if not self._postgres or self._postgres_ready:
            return

        def ready() -> bool:
            obj = self.api.require("apps/v1", "Deployment", "postgres", self.namespace)
            return status.deployment_progress(obj).done

        wait_for(
            ready,
            what=f"PostgreSQL in {self.namespace} to be ready",
            timeout=POSTGRES_TIMEOUT,
            interval=_POLL,
            retry_on=RolloutError,
        )
        self._postgres_ready = True


class KubeRolloutHandle:
    """An Argo Rollout, observed through its status and acted on as the kubectl plugin does."""

    def __init__(self, namespace: KubeNamespace, name: str) -> None:
        self._namespace = namespace
        self._name = name

    def __repr__(self) -> str:
        return f"<KubeRolloutHandle {self._namespace.namespace}/{self._name}>"

    @property
    def name(self) -> str:
        return self._name

    def _object(self) -> KubeObject:
        return self._namespace.api.require(*ROLLOUT_API, self._name, self._namespace.namespace)

    def status(self) -> RolloutView:
        return status.rollout_view(self._object())

    def wait_for_phase(self, phase: str, *, timeout: float) -> RolloutView:
        if phase not in status.ROLLOUT_PHASES:
            raise ConfigError(
                f"phase {phase!r}: expected one of {', '.join(status.ROLLOUT_PHASES)}"
            )
        last: list[RolloutView] = []

        def reached() -> RolloutView | None:
            view = self.status()
            last[:] = [view]
            return view if view.phase == phase else None

        try:
            return wait_for(
                reached,
                what=f"Rollout {self._name} to be {phase}",
                timeout=timeout,
                interval=_POLL,
                retry_on=RolloutError,
            )
        except WaitTimeout as exc:
            seen = last[0] if last else None
            observed = (
                f"phase {seen.phase!r} ({seen.message}), step {seen.current_step_index}, "
                f"canary weight {seen.canary_weight}"
                if seen
                else "no status"
            )
            events = [
                f"{e.reason}: {e.message}" for e in self.events()[-5:]
            ]  # the Rollout's own, newest last
            raise WaitTimeout(f"{exc}; last seen {observed}; events: {' | '.join(events)}") from exc

    def promote(self, *, full: bool = False) -> None:
        spec_patch, status_patch = status.promote_patches(self._object(), full=full)
        self._patch(status_patch, subresource="status")
        self._patch(spec_patch)

    def abort(self) -> None:
        self._patch(status.ABORT_PATCH, subresource="status")

    def retry(self) -> None:
        self._patch(status.RETRY_PATCH, subresource="status")

    def events(self) -> list[EventView]:
        return [
            event
            for event in self._namespace.events()
            if event.kind == "Rollout" and event.name == self._name
        ]

    def analysis_runs(self) -> list[AnalysisRunView]:
        runs = [
            run
            for run in self._namespace.api.list(*ANALYSIS_RUN_API, self._namespace.namespace)
            if status.owned_by(run, "Rollout", self._name)
        ]
        return [status.analysis_run_view(run) for run in sorted(runs, key=status.created_at)]

    def _patch(self, patch: Mapping[str, Any] | None, subresource: str | None = None) -> None:
        if patch is not None:
            self._namespace.api.merge_patch(
                *ROLLOUT_API,
                self._name,
                self._namespace.namespace,
                patch,
                subresource=subresource,
            )


def _without_noise(obj: KubeObject) -> KubeObject:
    """The object without ``managedFields`` (long, and not evidence)."""
    result = json.loads(json.dumps(obj, default=str))
    result.get("metadata", {}).pop("managedFields", None)
    return dict(result)


def memory_query(namespace: str) -> str:
    """PromQL for the working set of each pod of ``namespace``: its containers' cAdvisor
    series summed (the pod-level series, ``container=""``, and the pause container left out)."""
    return (
        "sum by (pod) (container_memory_working_set_bytes"
        f'{{namespace="{namespace}", container!="", container!="POD"}})'
    )


def workload_pod(pod: Mapping[str, Any], workloads: Collection[str]) -> bool:
    """Whether a ReplicaSet of one of ``workloads`` (Deployments, Rollouts) owns ``pod``: not
    the namespace's PostgreSQL, nor an analysis Job's pod."""
    owners = (pod.get("metadata") or {}).get("ownerReferences") or []
    # A workload's ReplicaSet is named <workload>-<pod-template-hash>.
    return any(
        owner.get("kind") == "ReplicaSet"
        and str(owner.get("name", "")).rpartition("-")[0] in workloads
        for owner in owners
    )
