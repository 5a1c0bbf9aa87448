"""The local backend's cluster: the same manifests a cluster runs, as processes on this machine.

:class:`LocalCluster` is the expensive, session-wide part: one event loop thread (the kubelet and
the controllers), one HAProxy (the Gateway and every Service's proxy) and one Prometheus.
:class:`~.namespace.LocalNamespace` is the cheap, per-test part: it applies manifests (Deployment,
Service, HTTPRoute), releases variants, waits for rollouts and tears everything down again.

Every pod is a real process on its own 127.x.y.z address; the target config maps its image to a
command. Pods are registered with Prometheus as soon as they have an address (as Kubernetes
service discovery does) and become router endpoints only when Ready, after the endpoint
delay of :mod:`.networking`.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path

from pytest_rollout.backends import server_of
from pytest_rollout.backends.base import (
    RollbackAllowance,
)
from pytest_rollout.backends.local.events import EventRecorder
from pytest_rollout.backends.local.loop import LoopThread
from pytest_rollout.backends.local.namespace import LocalNamespace
from pytest_rollout.backends.local.networking import (
    EndpointPublisher,
)
from pytest_rollout.backends.local.pods import Pod
from pytest_rollout.backends.local.prometheus import PrometheusServer, TargetGroup, pod_target
from pytest_rollout.backends.local.router import Router
from pytest_rollout.backends.local.scrape import ScrapeTarget
from pytest_rollout.config import TargetConfig
from pytest_rollout.engine.analysis import AnalysisTemplate
from pytest_rollout.errors import ConfigError, RolloutError
from pytest_rollout.names import check_namespace_name
from pytest_rollout.options import DEFAULT_ENDPOINT_DELAY, RolloutOptions

PROMETHEUS_SERVICE = ("prometheus", "rollout-system")
"""Where analysis templates find Prometheus: the Service the kube backend installs."""
ROUTER_APPLY_BUDGET = 0.25
"""Seconds allowed for a delayed weight change to reach HAProxy once due: the loop timer firing
late on a busy machine, then one runtime-API ``set var`` (docs/local-backend.md)."""


def local_rollback_allowance(endpoint_delay: float) -> RollbackAllowance:
    """The endpoint delay a weight change waits, the router's apply, and no event-time rounding
    (events carry the engine's own float time)."""
    return RollbackAllowance.of(
        {
            "endpoint_propagation": endpoint_delay,
            "router_apply": ROUTER_APPLY_BUDGET,
            "event_time_resolution": 0.0,
        }
    )


def open_local_cluster(
    options: RolloutOptions, workdir: Path, target: TargetConfig
) -> LocalCluster:
    """The session's local cluster, for the backend registry."""
    return LocalCluster(workdir, target, endpoint_delay=options.endpoint_delay).start()


class LocalCluster:
    """HAProxy, Prometheus and the kubelet/controller loop, shared by every test of a session."""

    def __init__(
        self,
        workdir: Path,
        target: TargetConfig,
        *,
        endpoint_delay: float = DEFAULT_ENDPOINT_DELAY,
        time_scale: float = 1.0,
    ) -> None:
        self.workdir = Path(workdir)
        self.target = target
        self.endpoint_delay = endpoint_delay
        self.time_scale = time_scale
        self.events = EventRecorder()
        self.loop = LoopThread()
        self.router = Router(self.workdir / "router")
        self.prometheus = PrometheusServer(self.workdir / "prometheus")
        self.publisher: EndpointPublisher | None = None
        self.namespaces: dict[str, LocalNamespace] = {}
        self._targets: dict[tuple[str, str], TargetGroup] = {}
        self.cluster_templates: dict[str, AnalysisTemplate] = {}
        self._prometheus_addresses = {server_of(address) for address in target.prometheus_addresses}

    def start(self) -> LocalCluster:
        try:
            self.loop.start()
            self.router.start()
            self.prometheus.start()
            self.publisher = EndpointPublisher(self.router, self.loop.loop, self.endpoint_delay)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Delete every namespace, then stop Prometheus, HAProxy and the loop. Idempotent."""
        errors: list[BaseException] = []
        for namespace in list(self.namespaces.values()):
            try:
                namespace.delete()
            except Exception as exc:  # keep tearing down; report the first failure after
                errors.append(exc)
        if self.publisher is not None:
            self.publisher.close()
            self.publisher = None
        self.loop.stop()
        self.prometheus.stop()
        self.router.stop()
        if errors:
            raise RolloutError(f"local cluster teardown: {errors[0]}") from errors[0]

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def describe(self) -> str:
        return (
            f"local cluster: HAProxy (master pid {self.router.master_pid}), Prometheus at "
            f"{self.prometheus.url}, work dir {self.workdir}"
        )

    def prometheus_url(self) -> str:
        """The base URL of the cluster's Prometheus, reachable from this machine."""
        return self.prometheus.url

    @property
    def rollback_allowance(self) -> RollbackAllowance:
        return local_rollback_allowance(self.endpoint_delay)

    def resolve_url(self, url: str, namespace: str) -> str:
        """Map an in-cluster URL (``http://svc.ns.svc.cluster.local[:port]/path``, ``http://svc``)
        to the loopback address serving it here; other URLs are returned unchanged.

        A Service resolves to its own proxy port; ``prometheus.rollout-system`` (where the kube
        backend installs Prometheus) and the target's ``[prometheus] addresses`` to the local
        Prometheus.
        """
        parts = urllib.parse.urlsplit(url)
        if server_of(url) in self._prometheus_addresses:
            target = urllib.parse.urlsplit(self.prometheus.url)
            return urllib.parse.urlunsplit(parts._replace(scheme="http", netloc=target.netloc))
        host = parts.hostname or ""
        labels = host.removesuffix(".svc.cluster.local").removesuffix(".svc").split(".")
        if host.replace(".", "").isdigit() or host == "localhost" or len(labels) > 2:
            return url
        service, service_namespace = labels[0], labels[1] if len(labels) == 2 else namespace
        if (service, service_namespace) == PROMETHEUS_SERVICE:
            base = self.prometheus.url
        else:
            owner = self.namespaces.get(service_namespace)
            if owner is None or service not in owner.services:
                raise ConfigError(
                    f"{url}: no Service {service!r} in namespace {service_namespace!r} "
                    "on the local backend (a Prometheus your templates name must be listed "
                    f"in [prometheus] addresses of {self.target.label})"
                )
            base = owner.service_url(service)
        target = urllib.parse.urlsplit(base)
        return urllib.parse.urlunsplit(parts._replace(netloc=target.netloc))

    def create_namespace(self, name: str) -> LocalNamespace:
        check_namespace_name(name)
        if name in self.namespaces:
            raise ConfigError(f"namespace {name!r} already exists")
        namespace = LocalNamespace(self, name)
        self.namespaces[name] = namespace
        return namespace

    # -- pods across namespaces (on the loop) --

    def pod_started(self, pod: Pod, scrape: ScrapeTarget | None) -> None:
        """Register a pod with Prometheus as soon as it has an address (as Kubernetes service
        discovery does), so that discovery overlaps its boot."""
        if scrape is not None:
            self._targets[(pod.namespace, pod.name)] = pod_target(
                scrape.address,
                namespace=pod.namespace,
                pod=pod.name,
                pod_labels=pod.labels,
                metrics_path=scrape.path,
                scrape_interval=scrape.interval,
            )
            self._publish_targets()

    def pod_gone(self, pod: Pod) -> None:
        """Forget a deleted pod's scrape target."""
        if self._targets.pop((pod.namespace, pod.name), None) is not None:
            self._publish_targets()

    def _publish_targets(self) -> None:
        self.prometheus.set_targets(list(self._targets.values()))

    def require_publisher(self) -> EndpointPublisher:
        if self.publisher is None:
            raise RolloutError("the local cluster is not started")
        return self.publisher
