"""The objects a test namespace gets, rendered from the target's manifests (pure functions).

What the kube backend changes on the way to the cluster, and why:

- every object gets the test's namespace;
- the workloads' pod templates get the ``[backends.kube].env`` of the target config, in every
  container and init container (it stands for what the cluster provides, so it wins);
- on a kind cluster, the Prometheus addresses the target lists in ``[prometheus] addresses`` are
  rewritten, in every AnalysisTemplate, to the Prometheus the backend installs (an existing
  cluster is trusted to have them, and they are left as written);
- every HTTPRoute gets a path prefix of its own: a rule matching ``PathPrefix /x`` matches
  ``/<namespace>/<route>/x`` instead, with a ``URLRewrite`` filter (``ReplacePrefixMatch``)
  giving the service back ``/x``. Routes of parallel tests share the one Gateway without
  colliding, and the client-facing URL is ``http://127.0.0.1:<gateway port>/<namespace>/<route>``:
  no Host header and no name resolution are needed, so the load generator and the experiments
  run unchanged.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from typing import Any

from pytest_rollout.backends import server_of
from pytest_rollout.backends.kube import versions
from pytest_rollout.backends.kube.resources import KubeObject, load_rendered
from pytest_rollout.config import Variant
from pytest_rollout.errors import ConfigError
from pytest_rollout.manifests import Manifest

WORKLOAD_KINDS = ("Deployment", "Rollout")
ANALYSIS_KINDS = ("AnalysisTemplate", "ClusterAnalysisTemplate")
MANAGED_BY = {"app.kubernetes.io/managed-by": "pytest-rollout"}
_POSTGRES_HOST = re.compile(r"(?:@|//)postgres(?::5432)?(?:/|$)")


def namespace_object(name: str, test: str) -> KubeObject:
    """The test's Namespace, labelled so that a leftover one can be found and removed."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "labels": {**MANAGED_BY, "pytest-rollout.io/test": _label_value(test)},
        },
    }


def in_namespace(obj: Mapping[str, Any], namespace: str) -> KubeObject:
    result = copy.deepcopy(dict(obj))
    result.setdefault("metadata", {})["namespace"] = namespace
    return result


def with_env(pod_spec: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """A copy of ``pod_spec`` with ``env`` set in every container and init container: an
    existing variable gets the new value (replacing any ``valueFrom``), a new one is added."""
    spec = copy.deepcopy(dict(pod_spec))
    if not env:
        return spec
    for key in ("initContainers", "containers"):
        for container in spec.get(key) or []:
            entries = [dict(entry) for entry in container.get("env") or []]
            for name, value in env.items():
                replacement = {"name": name, "value": value}
                for index, entry in enumerate(entries):
                    if entry.get("name") == name:
                        entries[index] = replacement
                        break
                else:
                    entries.append(replacement)
            container["env"] = entries
    return spec


def route_prefix(namespace: str, route: str) -> str:
    """The path under which route ``route`` of ``namespace`` is served by the shared Gateway."""
    return f"/{namespace}/{route}"


def prefixed_route(route: Mapping[str, Any], namespace: str, origin: str) -> KubeObject:
    """The HTTPRoute with every rule moved under ``/<namespace>`` (see the module docstring)."""
    result = in_namespace(route, namespace)
    prefix = route_prefix(namespace, str(result["metadata"]["name"]))
    rules = (result.get("spec") or {}).get("rules") or []
    for index, rule in enumerate(rules):
        where = f"{origin}: spec.rules[{index}]"
        matches = rule.get("matches") or [{"path": {"type": "PathPrefix", "value": "/"}}]
        if len(matches) != 1:
            raise ConfigError(
                f"{where}: the kube backend puts each test's route under its own path prefix, "
                f"which needs exactly one match per rule (found {len(matches)})"
            )
        match = copy.deepcopy(matches[0])
        path = match.get("path") or {"type": "PathPrefix", "value": "/"}
        if path.get("type", "PathPrefix") != "PathPrefix":
            raise ConfigError(
                f"{where}.matches[0].path: the kube backend needs a PathPrefix match to add the "
                f"namespace prefix, got {path.get('type')}"
            )
        filters = rule.get("filters") or []
        if any(f.get("type") == "URLRewrite" for f in filters):
            raise ConfigError(
                f"{where}.filters: a URLRewrite filter cannot be combined with the namespace "
                "prefix the kube backend adds"
            )
        original = path.get("value", "/")
        match["path"] = {
            "type": "PathPrefix",
            "value": prefix if original == "/" else prefix + original.rstrip("/"),
        }
        rule["matches"] = [match]
        rule["filters"] = [
            *filters,
            {
                "type": "URLRewrite",
                "urlRewrite": {
                    "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": original}
                },
            },
        ]
    return result


def workload_object(manifest: Manifest, namespace: str, env: Mapping[str, str]) -> KubeObject:
    obj = in_namespace(manifest.body, namespace)
    template = obj["spec"]["template"]
    template["spec"] = with_env(template.get("spec") or {}, env)
    return obj


def namespace_objects(
    manifests: Iterable[Manifest],
    namespace: str,
    env: Mapping[str, str],
    prometheus: Mapping[str, str] | None = None,
) -> list[KubeObject]:
    """The manifests as applied to ``namespace``; ``prometheus`` maps Prometheus addresses
    the AnalysisTemplates name to the one that serves them on this cluster."""
    objects: list[KubeObject] = []
    for manifest in manifests:
        if manifest.kind in WORKLOAD_KINDS:
            objects.append(workload_object(manifest, namespace, env))
        elif manifest.kind == "HTTPRoute":
            objects.append(prefixed_route(manifest.body, namespace, str(manifest.origin)))
        elif manifest.kind in ANALYSIS_KINDS and prometheus:
            objects.append(in_namespace(with_prometheus(manifest.body, prometheus), namespace))
        else:
            objects.append(in_namespace(manifest.body, namespace))
    return objects


def with_prometheus(template: Mapping[str, Any], rewrites: Mapping[str, str]) -> KubeObject:
    """A copy of an AnalysisTemplate whose Prometheus addresses — a metric's
    ``provider.prometheus.address``, or an argument's default value used as one — that are
    keys of ``rewrites`` (matched by scheme, host and port) are replaced by their values."""
    servers = {server_of(address): target for address, target in rewrites.items()}
    result = copy.deepcopy(dict(template))
    spec = result.get("spec") or {}

    def replaced(value: object) -> object:
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            return servers.get(server_of(value), value)
        return value

    for metric in spec.get("metrics") or []:
        prometheus = (metric.get("provider") or {}).get("prometheus")
        if isinstance(prometheus, dict) and "address" in prometheus:
            prometheus["address"] = replaced(prometheus["address"])
    for arg in spec.get("args") or []:
        if isinstance(arg, dict) and "value" in arg:
            arg["value"] = replaced(arg["value"])
    return result


def release_patch(
    workload: Mapping[str, Any], variant: Variant, env: Mapping[str, str]
) -> dict[str, Any]:
    """A merge patch giving the live workload the variant's pod template (then the backend's
    env). Merge patches replace lists whole, so both container lists are sent complete."""
    pod_spec = ((workload.get("spec") or {}).get("template") or {}).get("spec") or {}
    changed = with_env(variant.apply(pod_spec), env)
    patch: dict[str, Any] = {"containers": changed["containers"]}
    if changed.get("initContainers"):
        patch["initContainers"] = changed["initContainers"]
    return {"spec": {"template": {"spec": patch}}}


def needs_postgres(env: Mapping[str, str]) -> bool:
    """Whether the target's kube env points at the per-namespace ``postgres:5432``."""
    return any(_POSTGRES_HOST.search(value) for value in env.values())


def postgres_objects(namespace: str) -> list[KubeObject]:
    values = {"POSTGRES_IMAGE": versions.POSTGRES_IMAGE}
    return [
        in_namespace(obj, namespace) for obj in load_rendered("namespace/postgres.yaml", values)
    ]


def _label_value(text: str) -> str:
    """A valid label value (63 characters of [-_.A-Za-z0-9], alphanumeric at both ends)."""
    value = re.sub(r"[^-_.A-Za-z0-9]+", "-", text)[:63]
    return value.strip("-_.") or "test"
