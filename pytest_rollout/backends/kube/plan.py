"""What the kube backend does to a cluster, as data: ordered operations with rendered objects.

:func:`plan_install` turns what is pinned (:mod:`.versions`, the install files in ``data/``)
and what the cluster already has (:class:`ClusterState`) into an :class:`InstallPlan`;
:mod:`.executor` runs it. Keeping the decision free of I/O is what lets it be tested without
a cluster.

Idempotence: after a component's objects are applied and healthy, its fingerprint (version and
a hash of what was applied) is recorded in the ConfigMap ``pytest-rollout-installs`` in
``rollout-system``. A component whose recorded fingerprint matches, and whose CRDs are present,
is not applied again; only its health is checked.

Order: the namespace ``rollout-system`` comes first, because every component's marker lives
there; every namespaced object follows the Namespace it goes in, and every custom resource a
wait for its CRD to be Established.

On a cluster the plugin did not create (``--rollout-kubeconfig``), the cluster-wide
controllers (Gateway API CRDs, Argo Rollouts with the Gateway API plugin) are prerequisites the
plugin checks (present, and their CRDs Established) but never installs; its own pieces in
``rollout-system`` it installs as usual.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pytest_rollout.backends.kube import versions
from pytest_rollout.backends.kube.resources import KubeObject, load_rendered, ref
from pytest_rollout.errors import ConfigError

SYSTEM_NAMESPACE = "rollout-system"
ARGO_NAMESPACE = "argo-rollouts"
MARKER_NAME = "pytest-rollout-installs"
FIELD_MANAGER = "pytest-rollout"
GATEWAY_NAME = "rollout-gateway"
GATEWAY_NODE_PORT = 30080
PROMETHEUS_NODE_PORT = 30090
GATEWAY_SERVICE = ("traefik", 8000)
PROMETHEUS_SERVICE = ("prometheus", 9090)

GATEWAY_API_CRDS = (
    "gatewayclasses.gateway.networking.k8s.io",
    "gateways.gateway.networking.k8s.io",
    "httproutes.gateway.networking.k8s.io",
)
ARGO_CRDS = (
    "rollouts.argoproj.io",
    "analysisruns.argoproj.io",
    "analysistemplates.argoproj.io",
    "clusteranalysistemplates.argoproj.io",
)


class MissingPrerequisite(ConfigError):
    """A cluster the plugin did not create lacks something it needs and will not install."""


# --- operations --------------------------------------------------------------------------


@dataclass(frozen=True)
class ApplyObjects:
    """``kubectl apply --server-side`` of rendered objects."""

    component: str
    objects: tuple[KubeObject, ...]
    field_manager: str

    def describe(self) -> str:
        refs = ", ".join(ref(obj) for obj in self.objects)
        return f"[{self.component}] apply --server-side {refs}"


@dataclass(frozen=True)
class ApplyUrl:
    """``kubectl apply --server-side -f URL``: an upstream release manifest, as published."""

    component: str
    url: str
    field_manager: str
    namespace: str | None = None

    def describe(self) -> str:
        where = f" -n {self.namespace}" if self.namespace else ""
        return f"[{self.component}] apply --server-side{where} -f {self.url}"


@dataclass(frozen=True)
class WaitCrds:
    """Wait until the CRDs are Established (their kinds can be created)."""

    component: str
    names: tuple[str, ...]

    def describe(self) -> str:
        return f"[{self.component}] wait for CRDs {', '.join(self.names)} to be Established"


@dataclass(frozen=True)
class WaitDeployment:
    """Wait until a Deployment has rolled out and is available."""

    component: str
    namespace: str
    name: str

    def describe(self) -> str:
        return f"[{self.component}] wait for Deployment {self.namespace}/{self.name} to roll out"


@dataclass(frozen=True)
class WaitCondition:
    """Wait until an object reports a status condition as True."""

    component: str
    resource: str
    namespace: str
    name: str
    condition: str

    def describe(self) -> str:
        return (
            f"[{self.component}] wait for {self.resource} {self.namespace}/{self.name} "
            f"to be {self.condition}"
        )


@dataclass(frozen=True)
class RestartDeployment:
    """``kubectl rollout restart``: pods re-read configuration they only read at start."""

    component: str
    namespace: str
    name: str

    def describe(self) -> str:
        return f"[{self.component}] restart Deployment {self.namespace}/{self.name}"


@dataclass(frozen=True)
class BuildImage:
    """``docker build`` of a target image, tagged with every reference the manifests use."""

    tags: tuple[str, ...]
    context: Path
    dockerfile: Path | None

    def describe(self) -> str:
        dockerfile = f" -f {self.dockerfile}" if self.dockerfile else ""
        return f"[image] docker build{dockerfile} -t {' -t '.join(self.tags)} {self.context}"


@dataclass(frozen=True)
class SaveImages:
    """``docker save --platform``: the built images, for the nodes' platform only, as an archive.

    ``kind load docker-image`` pipes a plain ``docker save`` into ``ctr images import
    --all-platforms``; with Docker's containerd image store that archive names every platform of
    an image index while only the host's blobs exist, and the import fails (kind issues 3795 and
    4066). An archive of one platform imports with either image store.
    """

    tags: tuple[str, ...]
    archive: Path
    platform: str

    def describe(self) -> str:
        return (
            f"[image] docker save --platform {self.platform} -o {self.archive} "
            f"{' '.join(self.tags)}"
        )


@dataclass(frozen=True)
class LoadImageArchive:
    """``kind load image-archive``: copy the saved images onto the kind nodes."""

    cluster: str
    archive: Path

    def describe(self) -> str:
        return f"[image] kind load image-archive {self.archive} --name {self.cluster}"


Operation = (
    ApplyObjects
    | ApplyUrl
    | WaitCrds
    | WaitDeployment
    | WaitCondition
    | RestartDeployment
    | BuildImage
    | SaveImages
    | LoadImageArchive
)


# --- the cluster as it is ------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterState:
    """What the planner needs to know about a cluster, read before planning.

    ``installed`` is the data of the marker ConfigMap (component -> fingerprint);
    ``argo_plugins`` the traffic-router plugin names in ``argo-rollouts-config`` (None when that
    ConfigMap does not exist).
    """

    arch: str
    crds: frozenset[str]
    installed: Mapping[str, str] = field(default_factory=dict)
    argo_plugins: frozenset[str] | None = None


# --- what is installed -----------------------------------------------------------------------


@dataclass(frozen=True)
class Component:
    """One installable piece: its objects and/or upstream manifest, and how to know it is up."""

    name: str
    version: str
    objects: tuple[KubeObject, ...] = ()
    url: str | None = None
    url_namespace: str | None = None
    crds: tuple[str, ...] = ()
    deployments: tuple[tuple[str, str], ...] = ()
    conditions: tuple[WaitCondition, ...] = ()
    restart_on_upgrade: tuple[tuple[str, str], ...] = ()
    cluster_wide: bool = False
    """A controller the plugin installs only on clusters it manages (kind)."""

    @property
    def fingerprint(self) -> str:
        content = json.dumps([self.url, list(self.objects)], sort_keys=True).encode()
        return f"{self.version}+{hashlib.sha256(content).hexdigest()[:12]}"

    @property
    def field_manager(self) -> str:
        return f"{FIELD_MANAGER}-{self.name}"


def components(arch: str) -> tuple[Component, ...]:
    """Everything the backend installs, in install order, for nodes of ``arch``."""
    try:
        values = versions.placeholders(arch=arch)
    except ValueError as exc:
        raise ConfigError(f"cluster nodes run {arch!r}: {exc}") from exc
    return (
        # First: the markers of every component, its own included, are ConfigMaps in it.
        Component(
            SYSTEM_NAMESPACE,
            "v1",
            objects=tuple(load_rendered("install/rollout-system.yaml", values)),
        ),
        Component(
            "gateway-api",
            versions.GATEWAY_API,
            url=versions.GATEWAY_API_CRDS_URL,
            crds=GATEWAY_API_CRDS,
            cluster_wide=True,
        ),
        Component(
            "traefik",
            versions.TRAEFIK,
            objects=tuple(load_rendered("install/traefik.yaml", values)),
            deployments=((SYSTEM_NAMESPACE, "traefik"),),
            conditions=(
                WaitCondition(
                    "traefik",
                    "gateways.gateway.networking.k8s.io",
                    SYSTEM_NAMESPACE,
                    GATEWAY_NAME,
                    "Accepted",
                ),
            ),
        ),
        Component(
            "argo-rollouts",
            f"{versions.ARGO_ROLLOUTS}+gatewayapi-{versions.GATEWAY_API_PLUGIN}",
            objects=tuple(load_rendered("install/argo-rollouts.yaml", values)),
            url=versions.ARGO_ROLLOUTS_INSTALL_URL,
            url_namespace=ARGO_NAMESPACE,
            crds=ARGO_CRDS,
            deployments=((ARGO_NAMESPACE, "argo-rollouts"),),
            # The controller reads its plugin list only when it starts.
            restart_on_upgrade=((ARGO_NAMESPACE, "argo-rollouts"),),
            cluster_wide=True,
        ),
        Component(
            "prometheus",
            versions.PROMETHEUS,
            objects=tuple(load_rendered("install/prometheus.yaml", values)),
            deployments=((SYSTEM_NAMESPACE, "prometheus"),),
            # Its configuration is a ConfigMap read at start.
            restart_on_upgrade=((SYSTEM_NAMESPACE, "prometheus"),),
        ),
    )


@dataclass(frozen=True)
class InstallPlan:
    operations: tuple[Operation, ...]
    applied: tuple[str, ...]
    """Components (re)installed by this plan."""
    current: tuple[str, ...]
    """Components already at the pinned version: only their health is checked."""
    required: tuple[str, ...]
    """Cluster-wide components found on an existing cluster (not managed by the plugin)."""

    def describe(self) -> list[str]:
        return [operation.describe() for operation in self.operations]


def marker(component: Component) -> ApplyObjects:
    """The operation recording that ``component`` is installed at its fingerprint."""
    configmap: KubeObject = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": MARKER_NAME,
            "namespace": SYSTEM_NAMESPACE,
            "labels": {"app.kubernetes.io/part-of": "pytest-rollout"},
        },
        "data": {component.name: component.fingerprint},
    }
    # One field manager per component, so recording one key never removes another.
    return ApplyObjects(component.name, (configmap,), f"{FIELD_MANAGER}-marker-{component.name}")


def plan_install(state: ClusterState, *, managed: bool) -> InstallPlan:
    """The operations that bring the cluster to the pinned installs.

    ``managed``: the plugin created (or reuses) this cluster as a kind cluster and may install
    cluster-wide controllers. Otherwise missing prerequisites raise :class:`MissingPrerequisite`.
    """
    operations: list[Operation] = []
    applied: list[str] = []
    current: list[str] = []
    required: list[str] = []
    selected = components(state.arch)
    if not managed:
        _check_prerequisites(state, [c for c in selected if c.cluster_wide])
    for component in selected:
        if component.cluster_wide and not managed:
            required.append(component.name)
            if component.crds:
                operations.append(WaitCrds(component.name, component.crds))
            continue
        up_to_date = state.installed.get(component.name) == component.fingerprint and all(
            name in state.crds for name in component.crds
        )
        if up_to_date:
            current.append(component.name)
            operations.extend(_health_checks(component))
            continue
        applied.append(component.name)
        if component.objects:
            operations.append(
                ApplyObjects(component.name, component.objects, component.field_manager)
            )
        if component.url is not None:
            # A field manager of its own: applying the upstream objects must never remove
            # fields of ours on the same object (argo-rollouts-config's data, for one).
            operations.append(
                ApplyUrl(
                    component.name,
                    component.url,
                    f"{component.field_manager}-upstream",
                    component.url_namespace,
                )
            )
        if component.name in state.installed:
            operations.extend(
                RestartDeployment(component.name, namespace, name)
                for namespace, name in component.restart_on_upgrade
            )
        operations.extend(_health_checks(component))
        operations.append(marker(component))
    return InstallPlan(tuple(operations), tuple(applied), tuple(current), tuple(required))


def _health_checks(component: Component) -> list[Operation]:
    checks: list[Operation] = []
    if component.crds:
        checks.append(WaitCrds(component.name, component.crds))
    checks.extend(
        WaitDeployment(component.name, namespace, name) for namespace, name in component.deployments
    )
    checks.extend(component.conditions)
    return checks


def _check_prerequisites(state: ClusterState, required: Sequence[Component]) -> None:
    problems: list[str] = []
    missing_crds = [name for c in required for name in c.crds if name not in state.crds]
    if missing_crds:
        problems.append(f"missing CRDs {', '.join(missing_crds)}")
    if all(name in state.crds for name in ARGO_CRDS) and (
        state.argo_plugins is None or versions.GATEWAY_API_PLUGIN_NAME not in state.argo_plugins
    ):
        problems.append(
            f"the traffic-router plugin {versions.GATEWAY_API_PLUGIN_NAME} is not registered in "
            f"ConfigMap {ARGO_NAMESPACE}/argo-rollouts-config"
        )
    if problems:
        raise MissingPrerequisite(
            "; ".join(problems)
            + f" — install Gateway API {versions.GATEWAY_API} CRDs and Argo Rollouts "
            f"{versions.ARGO_ROLLOUTS} with the Gateway API plugin {versions.GATEWAY_API_PLUGIN} "
            "(docs/kube-backend.md, 'Existing clusters'), or omit --rollout-kubeconfig/"
            "--rollout-context to let the plugin create a kind cluster"
        )
