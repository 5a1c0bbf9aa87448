"""The cluster's API through the ``kubernetes`` client: plain dicts in, plain dicts out.

It uses the client's ``DynamicClient`` (server-side apply, merge patches with an explicit
content type, any kind including Argo's), so the rest of the backend never touches generated
model classes. Every failure becomes a :class:`~pytest_rollout.errors.RolloutError` (or a
:class:`~pytest_rollout.errors.ConfigError` for a bad kubeconfig) with one line of context.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import urllib3
import yaml
from kubernetes import client as kube_client
from kubernetes import config as kube_config
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import DynamicApiError, ResourceNotFoundError

from pytest_rollout.backends.kube.plan import (
    ARGO_NAMESPACE,
    MARKER_NAME,
    SYSTEM_NAMESPACE,
    ClusterState,
)
from pytest_rollout.backends.kube.resources import KubeObject
from pytest_rollout.errors import ConfigError, RolloutError

MERGE_PATCH = "application/merge-patch+json"
# The client's dynamic layer is untyped; everything it returns is converted to plain dicts here.
_new_client: Any = kube_config.new_client_from_config
_dynamic_client: Any = DynamicClient
_TIMEOUT = 30.0


class KubeApi:
    """A connection to one cluster (kubeconfig file and context)."""

    def __init__(self, kubeconfig: Path | None, context: str | None) -> None:
        self.kubeconfig = kubeconfig
        self.context = context
        where = describe_kubeconfig(kubeconfig, context)
        try:
            self.api_client = _new_client(
                config_file=str(kubeconfig) if kubeconfig is not None else None,
                context=context,
                persist_config=False,
            )
        except (kube_config.ConfigException, OSError, ValueError, TypeError) as exc:
            raise ConfigError(f"{where}: cannot load: {_first_line(exc)}") from exc
        self.host = str(self.api_client.configuration.host)
        self.server_version = self._reachable(where)
        self.dynamic: Any = _dynamic_client(self.api_client)

    def _reachable(self, where: str) -> str:
        try:
            info = kube_client.VersionApi(self.api_client).get_code(_request_timeout=10)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ConfigError(
                f"{where}: the cluster's API server at {self.host} is unreachable: "
                f"{_connection_problem(exc)}"
            ) from exc
        except kube_client.exceptions.ApiException as exc:
            raise ConfigError(
                f"{where}: the API server at {self.host} refused the request: "
                f"{exc.status} {exc.reason}"
            ) from exc
        return str(getattr(info, "git_version", "unknown"))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.api_client.close()

    # -- objects --

    def _resource(self, api_version: str, kind: str) -> Any:
        try:
            return self.dynamic.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError as exc:
            raise RolloutError(
                f"the cluster at {self.host} serves no {kind} in {api_version} "
                "(is its CRD installed?)"
            ) from exc

    @contextlib.contextmanager
    def _call(self, what: str) -> Iterator[None]:
        try:
            yield
        except DynamicApiError as exc:
            raise RolloutError(f"{what}: {exc.status} {_api_message(exc)}") from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise RolloutError(
                f"{what}: {self.host} unreachable: {_connection_problem(exc)}"
            ) from exc

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> KubeObject | None:
        """The object, or None when it does not exist."""
        resource = self._resource(api_version, kind)
        try:
            with self._call(f"get {kind} {namespace or ''}/{name}"):
                return _as_dict(
                    self.dynamic.get(
                        resource, name=name, namespace=namespace, _request_timeout=_TIMEOUT
                    )
                )
        except RolloutError as exc:
            if isinstance(exc.__cause__, DynamicApiError) and exc.__cause__.status == 404:
                return None
            raise

    def require(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> KubeObject:
        obj = self.get(api_version, kind, name, namespace)
        if obj is None:
            where = f" in namespace {namespace}" if namespace else ""
            raise ConfigError(f"no {kind} {name!r}{where}")
        return obj

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[KubeObject]:
        resource = self._resource(api_version, kind)
        with self._call(f"list {kind} in {namespace or 'all namespaces'}"):
            result = _as_dict(
                self.dynamic.get(
                    resource,
                    namespace=namespace,
                    label_selector=label_selector,
                    field_selector=field_selector,
                    _request_timeout=_TIMEOUT,
                )
            )
        return list(result.get("items") or [])

    def apply(self, obj: Mapping[str, Any], *, field_manager: str) -> KubeObject:
        """Server-side apply, taking over fields other managers set (we own these objects)."""
        metadata = obj.get("metadata") or {}
        resource = self._resource(str(obj["apiVersion"]), str(obj["kind"]))
        with self._call(
            f"apply {obj['kind']} {metadata.get('namespace', '')}/{metadata.get('name')}"
        ):
            return _as_dict(
                self.dynamic.server_side_apply(
                    resource,
                    body=dict(obj),
                    namespace=metadata.get("namespace"),
                    field_manager=field_manager,
                    force_conflicts=True,
                    _request_timeout=_TIMEOUT,
                )
            )

    def merge_patch(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None,
        body: Mapping[str, Any],
        *,
        subresource: str | None = None,
    ) -> KubeObject:
        resource = self._resource(api_version, kind)
        path = resource.path(name=name, namespace=namespace)
        if subresource is not None:
            path = f"{path}/{subresource}"
        with self._call(
            f"patch {kind} {namespace or ''}/{name}{'/' + subresource if subresource else ''}"
        ):
            return _as_dict(
                self.dynamic.request(
                    "patch",
                    path,
                    body=dict(body),
                    content_type=MERGE_PATCH,
                    _request_timeout=_TIMEOUT,
                )
            )

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> None:
        """Delete in the background (the call returns at once); absent is fine."""
        resource = self._resource(api_version, kind)
        try:
            with self._call(f"delete {kind} {namespace or ''}/{name}"):
                self.dynamic.delete(
                    resource,
                    name=name,
                    namespace=namespace,
                    propagation_policy="Background",
                    _request_timeout=_TIMEOUT,
                )
        except RolloutError as exc:
            if not (isinstance(exc.__cause__, DynamicApiError) and exc.__cause__.status == 404):
                raise

    def pod_log(self, pod: str, namespace: str, container: str, *, previous: bool = False) -> str:
        core = kube_client.CoreV1Api(self.api_client)
        with self._call(f"logs of {namespace}/{pod} [{container}]"):
            try:
                text = core.read_namespaced_pod_log(
                    name=pod,
                    namespace=namespace,
                    container=container,
                    previous=previous,
                    timestamps=True,
                    _request_timeout=_TIMEOUT,
                )
            except kube_client.exceptions.ApiException as exc:
                return f"(no log: {exc.status} {exc.reason})\n"
        return str(text)

    # -- what the installer needs to know --

    def cluster_state(self) -> ClusterState:
        nodes = self.list("v1", "Node")
        if not nodes:
            raise RolloutError(f"the cluster at {self.host} has no nodes")
        arch = str(nodes[0].get("status", {}).get("nodeInfo", {}).get("architecture", "amd64"))
        crds = frozenset(
            str(crd["metadata"]["name"])
            for crd in self.list("apiextensions.k8s.io/v1", "CustomResourceDefinition")
        )
        marker = self.get("v1", "ConfigMap", MARKER_NAME, SYSTEM_NAMESPACE)
        installed = dict((marker or {}).get("data") or {})
        argo_config = self.get("v1", "ConfigMap", "argo-rollouts-config", ARGO_NAMESPACE)
        plugins = None
        if argo_config is not None:
            plugins = traffic_router_plugins(
                (argo_config.get("data") or {}).get("trafficRouterPlugins")
            )
        return ClusterState(arch=arch, crds=crds, installed=installed, argo_plugins=plugins)


def traffic_router_plugins(text: object) -> frozenset[str]:
    """Plugin names from ``argo-rollouts-config``'s ``trafficRouterPlugins`` YAML."""
    if not isinstance(text, str):
        return frozenset()
    try:
        entries = yaml.safe_load(text)
    except yaml.YAMLError:
        return frozenset()
    if not isinstance(entries, list):
        return frozenset()
    return frozenset(
        str(entry["name"]) for entry in entries if isinstance(entry, dict) and "name" in entry
    )


def describe_kubeconfig(kubeconfig: Path | None, context: str | None) -> str:
    path = str(kubeconfig) if kubeconfig is not None else "the default kubeconfig"
    return f"kubeconfig {path}" + (f" (context {context})" if context else "")


def _as_dict(value: Any) -> KubeObject:
    result = value.to_dict() if hasattr(value, "to_dict") else value
    if not isinstance(result, dict):
        raise RolloutError(f"unexpected API answer: {type(value).__name__}")
    return result


def _api_message(exc: DynamicApiError) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, bytes | str):
        try:
            parsed = yaml.safe_load(body)
        except yaml.YAMLError:
            parsed = None
        if isinstance(parsed, dict) and parsed.get("message"):
            return str(parsed["message"])
    return _first_line(exc)


def _connection_problem(exc: BaseException) -> str:
    """The OS's word for a failed connection (``[Errno 111] Connection refused``) rather than
    urllib3's nested retry report."""
    text = str(getattr(exc, "reason", None) or exc)
    found = re.search(r"\[Errno -?\d+\] [^'\")]+", text)
    if found:
        return found.group(0).strip()
    return _first_line(exc)[:200]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
