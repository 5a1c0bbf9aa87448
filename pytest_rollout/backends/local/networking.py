"""Services and HTTPRoutes of the local backend, fed to the router.

A Service is a router pool whose endpoints are the Ready, non-terminating pods its selector
matches (``EndpointSlice`` semantics). Endpoint changes reach the router after the endpoint
delay, as on a cluster, where the EndpointSlice controller, the API server watch and the
gateway's own resync all stand between a pod turning unready and the proxy hearing of it. That
delay is why a pod that exits on SIGTERM without a preStop pause causes errors.

An HTTPRoute is a router route: one client-facing loopback port splitting requests between its
Services' pools by the backendRefs' weights.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pytest_rollout.backends.local.failures import FailureLatch
from pytest_rollout.backends.local.pods import Pod
from pytest_rollout.backends.local.router import Router
from pytest_rollout.fieldcheck import LOCAL_BACKEND_LABEL, FieldRef
from pytest_rollout.manifests import Manifest

_log = logging.getLogger(__name__)

_SERVICE_SPEC_FIELDS = {"selector", "ports", "type", "sessionAffinity"}
_ROUTE_SPEC_FIELDS = {"parentRefs", "rules", "hostnames"}


@dataclass(frozen=True)
class ServicePort:
    name: str | None
    port: int
    target_port: int | str


@dataclass(frozen=True)
class Service:
    namespace: str
    name: str
    selector: Mapping[str, str]
    ports: tuple[ServicePort, ...]

    @property
    def pool(self) -> str:
        return f"{self.namespace}/{self.name}"

    def selects(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(key) == value for key, value in self.selector.items())

    def endpoint(self, pod: Pod) -> str | None:
        """The pod's address for this Service's first port, or None when it has no such port."""
        if pod.ip is None:
            return None
        target = self.ports[0].target_port
        if isinstance(target, int):
            return f"{pod.ip}:{target}"
        number = pod.spec.container.named_ports.get(target)
        return f"{pod.ip}:{number}" if number is not None else None

    @classmethod
    def from_manifest(cls, manifest: Manifest, namespace: str) -> Service:
        spec = manifest.body.get("spec")
        if not isinstance(spec, dict):
            raise manifest.error(("spec",), "must be a mapping")
        FieldRef(("spec",), manifest, LOCAL_BACKEND_LABEL).only(spec, _SERVICE_SPEC_FIELDS)
        if spec.get("type", "ClusterIP") != "ClusterIP":
            raise manifest.error(("spec", "type"), "only ClusterIP is supported locally")
        selector = spec.get("selector")
        if not isinstance(selector, dict) or not selector:
            raise manifest.error(("spec", "selector"), "must be a non-empty mapping")
        raw_ports = spec.get("ports")
        if not isinstance(raw_ports, list) or not raw_ports:
            raise manifest.error(("spec", "ports"), "must be a non-empty list")
        ports = []
        for index, raw in enumerate(raw_ports):
            if not isinstance(raw, dict) or not isinstance(raw.get("port"), int):
                raise manifest.error(("spec", "ports", index, "port"), "must be an integer")
            target = raw.get("targetPort", raw["port"])
            if isinstance(target, bool) or not isinstance(target, int | str):
                raise manifest.error(
                    ("spec", "ports", index, "targetPort"), "must be a port number or name"
                )
            ports.append(ServicePort(raw.get("name"), raw["port"], target))
        return cls(
            namespace, manifest.name, {str(k): str(v) for k, v in selector.items()}, tuple(ports)
        )


@dataclass(frozen=True)
class RouteBackend:
    service: str
    port: int | None
    weight: int


@dataclass(frozen=True)
class HTTPRoute:
    namespace: str
    name: str
    backends: tuple[RouteBackend, ...]

    @property
    def route(self) -> str:
        return f"{self.namespace}/{self.name}"

    def pool(self, service: str) -> str:
        return f"{self.namespace}/{service}"

    @classmethod
    def from_manifest(cls, manifest: Manifest, namespace: str) -> HTTPRoute:
        spec = manifest.body.get("spec")
        if not isinstance(spec, dict):
            raise manifest.error(("spec",), "must be a mapping")
        where = FieldRef(("spec",), manifest, LOCAL_BACKEND_LABEL)
        where.only(spec, _ROUTE_SPEC_FIELDS)
        rules = spec.get("rules")
        if not isinstance(rules, list) or len(rules) != 1 or not isinstance(rules[0], dict):
            raise manifest.error(
                ("spec", "rules"), "the local backend supports exactly one rule per HTTPRoute"
            )
        rule: dict[str, Any] = rules[0]
        where.at("rules", 0).only(rule, ("matches", "backendRefs", "name"))
        for index, match in enumerate(rule.get("matches") or []):
            path = match.get("path") if isinstance(match, dict) else None
            if (
                not isinstance(match, dict)
                or set(match) - {"path"}
                or not isinstance(path, dict)
                or path.get("type", "PathPrefix") != "PathPrefix"
                or path.get("value", "/") != "/"
            ):
                raise manifest.error(
                    ("spec", "rules", 0, "matches", index),
                    "the local backend routes every path: only a PathPrefix '/' match is supported",
                )
        refs = rule.get("backendRefs")
        if not isinstance(refs, list) or not refs:
            raise manifest.error(("spec", "rules", 0, "backendRefs"), "must be a non-empty list")
        backends = []
        for index, ref in enumerate(refs):
            ref_path = ("spec", "rules", 0, "backendRefs", index)
            if not isinstance(ref, dict) or not isinstance(ref.get("name"), str):
                raise manifest.error(ref_path, "must name a Service")
            if ref.get("kind", "Service") != "Service" or ref.get("group", "") != "":
                raise manifest.error(ref_path, "only Service backends are supported")
            if "namespace" in ref:
                raise manifest.error(
                    (*ref_path, "namespace"), "cross-namespace backends are unsupported"
                )
            weight = ref.get("weight", 1)
            if isinstance(weight, bool) or not isinstance(weight, int) or weight < 0:
                raise manifest.error((*ref_path, "weight"), "must be an integer >= 0")
            backends.append(RouteBackend(ref["name"], ref.get("port"), weight))
        return cls(namespace, manifest.name, tuple(backends))


class EndpointPublisher:
    """Delivers endpoint and weight changes to the router, in order, after the endpoint delay.

    Router calls block (a socket round-trip, sometimes a reload), so they run on one dedicated
    worker thread rather than on the event loop; one thread keeps them in order.
    """

    def __init__(self, router: Router, loop: asyncio.AbstractEventLoop, delay: float) -> None:
        self.router = router
        self.loop = loop
        self.delay = delay
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="router")
        self._pending: dict[asyncio.TimerHandle, Callable[[], object]] = {}

    def publish_endpoints(
        self, pool: str, endpoints: Mapping[str, str], failure: FailureLatch | None = None
    ) -> None:
        """Schedule ``pool``'s endpoints to become ``endpoints`` after the delay (on the loop).

        Nobody waits for a delayed change: if the router refuses it, ``failure`` keeps the
        error (else it is only logged)."""
        snapshot = dict(endpoints)
        self._later(
            lambda: self.router.set_endpoints(pool, snapshot),
            f"the endpoint update of pool {pool}",
            failure,
        )

    def publish_weights(
        self, route: str, weights: Mapping[str, int], failure: FailureLatch | None = None
    ) -> None:
        """Schedule a route's pool weights to change after the delay: an HTTPRoute update
        reaches the Gateway's data plane no sooner than an endpoint change does. ``failure``
        as for :meth:`publish_endpoints`."""
        snapshot = dict(weights)
        self._later(
            lambda: self.router.set_weights(route, snapshot),
            f"the weight update of route {route}",
            failure,
        )

    def run(self, call: Callable[[], object]) -> concurrent.futures.Future[object]:
        """Run a router call now, in order with the delayed ones."""
        return self._executor.submit(call)

    def _later(self, call: Callable[[], object], what: str, failure: FailureLatch | None) -> None:
        handle: asyncio.TimerHandle | None = None

        def guarded() -> None:
            try:
                call()
            except Exception as exc:
                self._report(exc, what, failure)

        def fire() -> None:
            if handle is not None:
                self._pending.pop(handle, None)
            self._executor.submit(guarded)

        handle = self.loop.call_later(self.delay, fire)
        self._pending[handle] = guarded

    def _report(self, error: Exception, what: str, failure: FailureLatch | None) -> None:
        """On the router's thread: hand a failed delayed change to the loop, which keeps it."""
        if failure is None:
            _log.error("%s failed", what, exc_info=error)
            return
        with contextlib.suppress(RuntimeError):  # the loop is gone: the session is ending
            self.loop.call_soon_threadsafe(failure.record, error, what)

    def flush(self) -> None:
        """Deliver every scheduled change now, in order, and wait for the worker."""
        for handle, call in sorted(self._pending.items(), key=lambda item: item[0].when()):
            handle.cancel()
            self._executor.submit(call)
        self._pending.clear()
        self._executor.submit(lambda: None).result()

    def close(self) -> None:
        for handle in self._pending:
            handle.cancel()
        self._pending.clear()
        self._executor.shutdown(wait=True)


def ready_endpoints(service: Service, pods: Iterable[Pod]) -> dict[str, str]:
    """The endpoints of ``service`` among ``pods``: Ready, not terminating, selected."""
    endpoints = {}
    for pod in pods:
        if pod.ready and not pod.deleting and service.selects(pod.labels):
            address = service.endpoint(pod)
            if address is not None:
                endpoints[pod.name] = address
    return endpoints
