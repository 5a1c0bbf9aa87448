"""The kube backend's cluster: a kind cluster the plugin creates or reuses, or any cluster a
kubeconfig points at; brought to the pinned installs, with the service image loaded.

Two ways in:

- **kind** (no ``--rollout-kubeconfig``/``--rollout-context``): the cluster named by
  ``--rollout-kind-cluster`` (default ``pytest-rollout``) is reused when it exists, else created
  from the packaged ``kind-config.yaml`` with the pinned node image of
  ``$PYTEST_ROLLOUT_KUBERNETES``; it is deleted at the end of the run when the plugin created it,
  unless ``--rollout-keep-cluster``. The Gateway and Prometheus are reached on the host ports
  kind maps to their NodePorts.
- **existing cluster** (``--rollout-kubeconfig PATH`` and/or ``--rollout-context NAME``): never
  deleted; Gateway API and Argo Rollouts must already be installed (checked); the Gateway and
  Prometheus are reached through ``kubectl port-forward`` on loopback (:mod:`.forward`).
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from pytest_rollout.backends import KIND_PROMETHEUS
from pytest_rollout.backends.base import Namespace, RollbackAllowance
from pytest_rollout.backends.kube import plan as install
from pytest_rollout.backends.kube import timing, tools, versions
from pytest_rollout.backends.kube.api import KubeApi, describe_kubeconfig
from pytest_rollout.backends.kube.executor import Executor, kubectl_base
from pytest_rollout.backends.kube.forward import PortForward
from pytest_rollout.backends.kube.images import plan_images
from pytest_rollout.backends.kube.kind import (
    DEFAULT_CLUSTER,
    ClusterLease,
    Kind,
    node_image,
)
from pytest_rollout.backends.kube.namespace import KubeNamespace
from pytest_rollout.backends.kube.resources import data_dir
from pytest_rollout.config import TargetConfig
from pytest_rollout.errors import ConfigError, RolloutError
from pytest_rollout.names import check_kind_cluster_name, check_namespace_name
from pytest_rollout.options import RolloutOptions


def uses_existing_cluster(options: RolloutOptions) -> bool:
    return options.uses_existing_cluster


def kind_cluster_name(options: RolloutOptions) -> str:
    return check_kind_cluster_name(options.kind_cluster or DEFAULT_CLUSTER)


def component_versions(options: RolloutOptions) -> str:
    """The versions this run's cluster runs, for the report header: Kubernetes (the pinned kind
    node image; an existing cluster's own, reported once it is reached), Argo Rollouts, the
    Gateway API plugin and Traefik."""
    if uses_existing_cluster(options):
        kubernetes = "the existing cluster's"
    else:
        try:
            kubernetes = versions.node_image_version(node_image())
        except ConfigError:
            kubernetes = "unknown (bad $" + versions.KUBERNETES_ENV + ")"
    return (
        f"kubernetes {kubernetes}, argo-rollouts {versions.ARGO_ROLLOUTS}, "
        f"gatewayapi-plugin {versions.GATEWAY_API_PLUGIN}, traefik {versions.TRAEFIK}"
    )


def header(options: RolloutOptions) -> str:
    """The report-header line: which cluster, and whether it will be created or reused."""
    if uses_existing_cluster(options):
        where = describe_kubeconfig(options.kubeconfig, options.context)
        return f"kube: existing cluster from {where} (reused, never deleted)"
    name = options.kind_cluster or DEFAULT_CLUSTER
    kind = shutil.which(tools.KIND.name)
    if kind is None:
        return f"kube: kind cluster {name!r}: `kind` not found on PATH"
    try:
        exists = name in Kind(kind, "docker", Path.cwd()).clusters()
    except RolloutError as exc:
        return f"kube: kind cluster {name!r}: cannot list kind clusters ({exc})"
    if exists:
        return f"kube: kind cluster {name!r} exists: reused (never deleted by this run)"
    try:
        image = node_image()
    except ConfigError as exc:
        return f"kube: {exc}"
    fate = "kept (--rollout-keep-cluster)" if options.keep_cluster else "deleted after the run"
    return f"kube: kind cluster {name!r} will be created ({image.partition('@')[0]}); {fate}"


class KubeCluster:
    """The session's cluster (one per xdist worker; workers share the kind cluster)."""

    def __init__(self, options: RolloutOptions, workdir: Path, target: TargetConfig) -> None:
        self.options = options
        self.workdir = Path(workdir)
        self.target = target
        self.env = target.backend_env("kube")
        # On kind, the Prometheus the templates name is the one installed here; an existing
        # cluster is trusted to serve the addresses as written.
        self.prometheus_rewrites = (
            {}
            if uses_existing_cluster(options)
            else dict.fromkeys(target.prometheus_addresses, KIND_PROMETHEUS)
        )
        self.api: KubeApi | None = None
        self.kind_name: str | None = None
        self.created = False
        self.gateway_url = ""
        self._prometheus_url = ""
        self.installed: install.InstallPlan | None = None
        self.namespaces: dict[str, KubeNamespace] = {}
        self._kind: Kind | None = None
        self._lease: ClusterLease | None = None
        self._kubeconfig: Path | None = None
        self._forwards: dict[str, PortForward] = {}

    # -- lifecycle --

    def start(self) -> KubeCluster:
        try:
            if uses_existing_cluster(self.options):
                self._start_existing()
            else:
                self._start_kind()
        except BaseException:
            # The reason the start failed is the error to report, not a teardown hiccup.
            with contextlib.suppress(Exception):
                self.stop()
            raise
        return self

    def _start_kind(self) -> None:
        paths = tools.require(tools.KIND, tools.KUBECTL, tools.DOCKER)
        name = kind_cluster_name(self.options)
        image = node_image()
        config = data_dir() / "kind-config.yaml"
        self.kind_name = name
        self._kind = Kind(paths["kind"], paths["docker"], self.workdir)
        self._kubeconfig = self.workdir / "kubeconfig"
        self._lease = ClusterLease(name)
        with self._lease.locked():
            if name not in self._kind.clusters():
                self._kind.create(name, config=config, image=image, kubeconfig=self._kubeconfig)
                self.created = True
            self._lease.join(created=self.created)
            self._kind.export_kubeconfig(name, self._kubeconfig)
            self.api = KubeApi(self._kubeconfig, f"kind-{name}")
            executor = self._executor(paths["kubectl"], f"kind-{name}", paths)
            state = self.api.cluster_state()
            self.installed = install.plan_install(state, managed=True)
            executor.run(self.installed.operations)
            executor.run(
                plan_images(self.target, kind_cluster=name, arch=state.arch, workdir=self.workdir)
            )
        self.gateway_url = (
            f"http://127.0.0.1:{self._kind.host_port(name, install.GATEWAY_NODE_PORT)}"
        )
        self._prometheus_url = (
            f"http://127.0.0.1:{self._kind.host_port(name, install.PROMETHEUS_NODE_PORT)}"
        )

    def _start_existing(self) -> None:
        self._kubeconfig = self.options.kubeconfig
        self.api = KubeApi(self.options.kubeconfig, self.options.context)
        kubectl = tools.find(tools.KUBECTL)
        where = describe_kubeconfig(self.options.kubeconfig, self.options.context)
        state = self.api.cluster_state()
        try:
            self.installed = install.plan_install(state, managed=False)
        except install.MissingPrerequisite as exc:
            raise ConfigError(f"{where}: {exc}") from exc
        executor = self._executor(kubectl, self.options.context, {})
        executor.run(self.installed.operations)
        kind_name = self._kind_behind(self.options.context)
        if kind_name is not None:
            paths = tools.require(tools.KIND, tools.DOCKER)
            executor.kind, executor.docker = paths["kind"], paths["docker"]
            executor.run(
                plan_images(
                    self.target, kind_cluster=kind_name, arch=state.arch, workdir=self.workdir
                )
            )
        base = kubectl_base(kubectl, self.options.kubeconfig, self.options.context)
        for key, (service, port) in (
            ("gateway", install.GATEWAY_SERVICE),
            ("prometheus", install.PROMETHEUS_SERVICE),
        ):
            self._forwards[key] = PortForward(
                base, install.SYSTEM_NAMESPACE, service, port,
                log_path=self.workdir / f"port-forward-{service}.log",
            )  # fmt: skip
        self.gateway_url = self._forwards["gateway"].url()
        self._prometheus_url = self._forwards["prometheus"].url()

    def _kind_behind(self, context: str | None) -> str | None:
        """The kind cluster a ``kind-NAME`` context belongs to, when kind knows it (its images
        can then be loaded); None for any other cluster, which must pull them itself."""
        if context is None or not context.startswith("kind-") or shutil.which("kind") is None:
            return None
        name = context.removeprefix("kind-")
        kind = Kind(str(shutil.which("kind")), "docker", self.workdir)
        return name if name in kind.clusters() else None

    def _executor(self, kubectl: str, context: str | None, paths: dict[str, str]) -> Executor:
        return Executor(
            workdir=self.workdir,
            kubectl=kubectl,
            kubeconfig=self._kubeconfig,
            context=context,
            kind=paths.get("kind", "kind"),
            docker=paths.get("docker", "docker"),
        )

    def stop(self) -> None:
        """Delete the namespaces still open, stop port-forwards, and delete the kind cluster
        when this was its last user and the plugin created it (unless kept). Idempotent."""
        errors: list[BaseException] = []
        for namespace in list(self.namespaces.values()):
            try:
                namespace.delete()
            except Exception as exc:  # keep tearing down; report the first failure after
                errors.append(exc)
        self.namespaces.clear()
        for forward in self._forwards.values():
            forward.stop()
        self._forwards.clear()
        if self.api is not None:
            self.api.close()
            self.api = None
        lease, self._lease = self._lease, None
        if lease is not None and self._kind is not None and self.kind_name is not None:
            with lease.locked():
                last_created = lease.leave()
                if last_created and not self.options.keep_cluster:
                    try:
                        self._kind.delete(self.kind_name, self._kubeconfig or Path("kubeconfig"))
                    except RolloutError as exc:
                        errors.append(exc)
        if errors:
            raise RolloutError(f"kube cluster teardown: {errors[0]}") from errors[0]

    def __enter__(self) -> KubeCluster:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- the Cluster protocol --

    def prometheus_url(self) -> str:
        """The installed Prometheus from this machine: kind's port mapping, or a port-forward
        (started again if it exited) on a cluster the plugin did not create."""
        forward = self._forwards.get("prometheus")
        return forward.url() if forward is not None else self._prometheus_url

    @property
    def rollback_allowance(self) -> RollbackAllowance:
        return timing.rollback_allowance()

    def describe(self) -> str:
        if self.kind_name is not None:
            where = f"kind cluster {self.kind_name!r} ({'created' if self.created else 'reused'})"
        else:
            where = describe_kubeconfig(self.options.kubeconfig, self.options.context)
        version = self.api.server_version if self.api is not None else "?"
        plan = self.installed
        installs = (
            f"installed {', '.join(plan.applied) or 'nothing'}; "
            f"already current {', '.join(plan.current) or 'nothing'}"
            + (f"; found {', '.join(plan.required)}" if plan.required else "")
            if plan is not None
            else "not installed"
        )
        return (
            f"kube: {where}, Kubernetes {version}, gateway {self.gateway_url}, "
            f"Prometheus {self._prometheus_url}; {installs}"
        )

    def create_namespace(self, name: str) -> Namespace:
        if self.api is None:
            raise RolloutError("the kube cluster is not started")
        check_namespace_name(name)
        if name in self.namespaces:
            raise ConfigError(f"namespace {name!r} already exists")
        gateway = self._forwards.get("gateway")
        namespace = KubeNamespace(
            self.api,
            name,
            test=name,
            env=self.env,
            gateway_url=gateway.url() if gateway is not None else self.gateway_url,
            prometheus_url=self.prometheus_url(),
            rollback_allowance=self.rollback_allowance,
            prometheus_rewrites=self.prometheus_rewrites,
        )
        self.namespaces[name] = namespace
        return namespace


def open_kube_cluster(options: RolloutOptions, workdir: Path, target: TargetConfig) -> KubeCluster:
    """The session's cluster, for the backend registry.

    Its errors are one-line :class:`RolloutError` messages meant for the user (a missing tool,
    an unreachable cluster, missing CRDs, a failed install step); the plugin shows them alone.
    """
    return KubeCluster(options, workdir, target).start()
