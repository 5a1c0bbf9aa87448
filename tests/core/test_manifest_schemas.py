"""Every manifest under fixtures/manifests validates offline, as a cluster would accept it.

- Kubernetes kinds: ``kubernetes-validate`` in strict mode (unknown fields are errors) against
  each minor in :data:`KUBERNETES_VERSIONS`.
- ``Rollout`` and ``AnalysisTemplate``: the openAPIV3Schema of the Argo Rollouts v1.9.1 CRDs,
  with unknown fields rejected (the API server would prune them silently); the Rollout's pod
  template also as a Kubernetes ``PodTemplate``. Skipped, with the reason, when the CRDs are not
  at hand (``$PYTEST_ROLLOUT_ARGO_CRDS``, by default ``../shared/argo-rollouts-v1.9.1/crds``
  beside the checkout).
- ``HTTPRoute``: ``kubernetes-validate`` ships no Gateway API schemas, so its shape is checked
  against :data:`HTTPROUTE_SCHEMA`, a structural schema of the ``gateway.networking.k8s.io/v1``
  fields these manifests use (limits and enums as in the Gateway API types); any other field is
  rejected rather than passed unchecked. CEL rules of the real CRD are not evaluated.
- References between objects of each manifest set in ``rollout.toml`` resolve.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate
import pytest
import yaml

from pytest_rollout.config import TargetConfig
from pytest_rollout.config_file import load_target_config
from pytest_rollout.engine.deployment import RollingUpdate
from pytest_rollout.errors import ConfigError
from pytest_rollout.manifests import Manifest, ManifestSet, load_manifest_file

REPO = Path(__file__).resolve().parents[2]
MANIFEST_DIR = REPO / "fixtures" / "manifests"
MANIFEST_FILES = sorted(MANIFEST_DIR.rglob("*.yaml"))

KUBERNETES_VERSIONS = ("1.35", "1.36", "1.37")
"""Kubernetes minors the manifests must be valid for: the newest that ``kubernetes-validate``
1.37 ships and the two before it. The kube backend's CI matrix runs the same three."""

ARGO_CRDS = Path(
    os.environ.get("PYTEST_ROLLOUT_ARGO_CRDS", REPO.parent / "shared/argo-rollouts-v1.9.1/crds")
)
ARGO_GROUP = "argoproj.io"
GATEWAY_GROUP = "gateway.networking.k8s.io"
GATEWAY_API_PLUGIN = "argoproj-labs/gatewayAPI"

Validator = Callable[[Manifest], None]


def _file_id(path: Path) -> str:
    return str(path.relative_to(MANIFEST_DIR))


def _manifests(kinds: Sequence[str] | None = None) -> Iterator[Manifest]:
    for path in MANIFEST_FILES:
        for manifest in load_manifest_file(path):
            if kinds is None or manifest.kind in kinds:
                yield manifest


def _fail(manifest: Manifest, path: Sequence[str | int], message: str) -> None:
    pytest.fail(str(manifest.error(list(path), message)), pytrace=False)


# --- Kubernetes kinds ------------------------------------------------------------------------


def _validate_kubernetes(manifest: Manifest, body: Mapping[str, Any], version: str) -> None:
    try:
        kubernetes_validate.validate(dict(body), version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        _fail(manifest, list(exc.path), f"Kubernetes {exc.version}: {exc.message}")
    except kubernetes_validate.SchemaNotFoundError as exc:
        _fail(manifest, ["kind"], exc.message)


def test_the_versions_are_shipped_by_kubernetes_validate() -> None:
    utils = kubernetes_validate.utils
    shipped = {utils.major_minor(version) for version in utils.all_versions()}
    missing = [version for version in KUBERNETES_VERSIONS if version not in shipped]
    assert not missing, f"kubernetes-validate ships {sorted(shipped)}, not {missing}"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path", MANIFEST_FILES, ids=_file_id)
def test_kubernetes_kinds_validate(path: Path, version: str) -> None:
    for manifest in load_manifest_file(path):
        if manifest.group in (ARGO_GROUP, GATEWAY_GROUP):
            continue
        _validate_kubernetes(manifest, manifest.body, version)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_rollout_pod_templates_validate_as_kubernetes_pod_templates(version: str) -> None:
    rollouts = list(_manifests(["Rollout"]))
    assert rollouts
    for rollout in rollouts:
        pod_template = {
            "apiVersion": "v1",
            "kind": "PodTemplate",
            "metadata": {"name": rollout.name},
            "template": rollout.body["spec"]["template"],
        }
        _validate_kubernetes(rollout, pod_template, version)


def test_kubernetes_validation_rejects_an_unknown_field() -> None:
    (deployment,) = load_manifest_file(MANIFEST_DIR / "readiness-probe/with-probe/deployment.yaml")
    body = deployment.to_dict()
    body["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(body, KUBERNETES_VERSIONS[-1], strict=True)


# --- Argo Rollouts kinds -----------------------------------------------------------------------


def _strict(schema: Any) -> Any:
    """The schema with unknown fields rejected wherever the API server would prune them."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {key: _strict(value) for key, value in schema.items()}
    if (
        result.get("type") == "object"
        and "properties" in result
        and "additionalProperties" not in result
        and not result.get("x-kubernetes-preserve-unknown-fields")
    ):
        result["additionalProperties"] = False
    return result


@cache
def _argo_schemas() -> dict[tuple[str, str], Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    schemas: dict[tuple[str, str], Any] = {}
    for path in sorted(ARGO_CRDS.glob("*.yaml")):
        crd = yaml.load(path.read_text(), Loader=loader)
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = _strict(version["schema"]["openAPIV3Schema"])
            schemas[(f"{group}/{version['name']}", kind)] = schema
    return schemas


@pytest.fixture(scope="module")
def argo_schemas() -> dict[tuple[str, str], Any]:
    if not ARGO_CRDS.is_dir() or not any(ARGO_CRDS.glob("*.yaml")):
        pytest.skip(
            f"Argo Rollouts CRDs not found in {ARGO_CRDS}; set PYTEST_ROLLOUT_ARGO_CRDS to a "
            "directory holding the v1.9.1 crds/*.yaml to validate Rollouts and AnalysisTemplates"
        )
    return _argo_schemas()


def _schema_errors(schema: Any, body: Mapping[str, Any]) -> list[Any]:
    validator = jsonschema.Draft7Validator(schema)
    return sorted(validator.iter_errors(dict(body)), key=lambda e: list(e.absolute_path))


def _validate_schema(manifest: Manifest, schema: Any, body: Mapping[str, Any]) -> None:
    errors = _schema_errors(schema, body)
    if errors:
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        _fail(manifest, list(first.absolute_path), f"{first.message}{more}")


@pytest.mark.parametrize(
    "path",
    [p for p in MANIFEST_FILES if any(m.group == ARGO_GROUP for m in load_manifest_file(p))],
    ids=_file_id,
)
def test_argo_kinds_validate_against_the_crds(
    path: Path, argo_schemas: dict[tuple[str, str], Any]
) -> None:
    for manifest in load_manifest_file(path):
        if manifest.group != ARGO_GROUP:
            continue
        schema = argo_schemas.get((manifest.api_version, manifest.kind))
        if schema is None:
            _fail(manifest, ["kind"], f"no Argo Rollouts CRD for {manifest.api_version}")
        _validate_schema(manifest, schema, manifest.body)


def test_crd_validation_rejects_unknown_and_mistyped_fields(
    argo_schemas: dict[tuple[str, str], Any],
) -> None:
    (rollout,) = load_manifest_file(MANIFEST_DIR / "bad-canary/rollout.yaml")
    schema = argo_schemas[(rollout.api_version, "Rollout")]
    unknown = rollout.to_dict()
    unknown["spec"]["strategy"]["canary"]["steps"][0]["setWieght"] = 5
    assert any("setWieght" in e.message for e in _schema_errors(schema, unknown))
    mistyped = rollout.to_dict()
    mistyped["spec"]["replicas"] = "four"
    assert [list(e.absolute_path) for e in _schema_errors(schema, mistyped)] == [
        ["spec", "replicas"]
    ]


# --- the Gateway API plugin's config inside the Rollout ----------------------------------------

GATEWAY_API_PLUGIN_SCHEMA: dict[str, Any] = {
    # Fields of GatewayAPITrafficRouting in the plugin's pkg/plugin/types.go (v0.15 era).
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "httpRoute": {"type": "string", "minLength": 1},
        "grpcRoute": {"type": "string", "minLength": 1},
        "tcpRoute": {"type": "string", "minLength": 1},
        "tlsRoute": {"type": "string", "minLength": 1},
        "namespace": {"type": "string", "minLength": 1},
        "configMap": {"type": "string", "minLength": 1},
        "httpRoutes": {"type": "array"},
        "grpcRoutes": {"type": "array"},
        "tcpRoutes": {"type": "array"},
        "tlsRoutes": {"type": "array"},
        "httpRouteSelector": {"type": "object"},
        "grpcRouteSelector": {"type": "object"},
        "tcpRouteSelector": {"type": "object"},
        "tlsRouteSelector": {"type": "object"},
        "disableInProgressLabel": {"type": "boolean"},
        "inProgressLabelKey": {"type": "string"},
        "inProgressLabelValue": {"type": "string"},
    },
    "anyOf": [
        {"required": [key]}
        for key in (
            "httpRoute",
            "grpcRoute",
            "tcpRoute",
            "tlsRoute",
            "httpRoutes",
            "grpcRoutes",
            "tcpRoutes",
            "tlsRoutes",
            "httpRouteSelector",
            "grpcRouteSelector",
            "tcpRouteSelector",
            "tlsRouteSelector",
        )
    ],
}


def _plugin_config(rollout: Manifest) -> tuple[list[str | int], Mapping[str, Any]]:
    path: list[str | int] = ["spec", "strategy", "canary", "trafficRouting", "plugins"]
    plugins = rollout.body["spec"]["strategy"]["canary"]["trafficRouting"]["plugins"]
    if set(plugins) != {GATEWAY_API_PLUGIN}:
        _fail(rollout, path, f"expected exactly the {GATEWAY_API_PLUGIN} plugin, got {plugins}")
    return [*path, GATEWAY_API_PLUGIN], plugins[GATEWAY_API_PLUGIN]


def _traffic_routed(rollout: Manifest) -> bool:
    return "trafficRouting" in rollout.body["spec"]["strategy"].get("canary", {})


def test_rollouts_route_traffic_through_the_gateway_api_plugin() -> None:
    rollouts = [r for r in _manifests(["Rollout"]) if _traffic_routed(r)]
    assert rollouts
    for rollout in rollouts:
        path, config = _plugin_config(rollout)
        errors = _schema_errors(GATEWAY_API_PLUGIN_SCHEMA, config)
        if errors:
            _fail(rollout, path + list(errors[0].absolute_path), errors[0].message)
    assert _schema_errors(GATEWAY_API_PLUGIN_SCHEMA, {"httpRoute": "r", "route": "x"})
    assert _schema_errors(GATEWAY_API_PLUGIN_SCHEMA, {"namespace": "n"})


# --- HTTPRoute ---------------------------------------------------------------------------------

_OBJECT_NAME = {"type": "string", "minLength": 1, "maxLength": 253}
_PORT = {"type": "integer", "minimum": 1, "maximum": 65535}


def _closed(properties: dict[str, Any], required: Sequence[str] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
        "required": list(required),
    }


_STRING_MATCH = _closed(
    {
        "type": {"enum": ["Exact", "RegularExpression"]},
        "name": {"type": "string", "minLength": 1, "maxLength": 256},
        "value": {"type": "string", "maxLength": 4096},
    },
    required=("name", "value"),
)

HTTPROUTE_SCHEMA: dict[str, Any] = _closed(
    {
        "apiVersion": {"const": f"{GATEWAY_GROUP}/v1"},
        "kind": {"const": "HTTPRoute"},
        "metadata": {"type": "object"},
        "spec": _closed(
            {
                "parentRefs": {
                    "type": "array",
                    "maxItems": 32,
                    "items": _closed(
                        {
                            "group": {"type": "string", "maxLength": 253},
                            "kind": {"type": "string", "minLength": 1, "maxLength": 63},
                            "namespace": {"type": "string", "minLength": 1, "maxLength": 63},
                            "name": _OBJECT_NAME,
                            "sectionName": {"type": "string", "minLength": 1, "maxLength": 253},
                            "port": _PORT,
                        },
                        required=("name",),
                    ),
                },
                "hostnames": {
                    "type": "array",
                    "maxItems": 16,
                    "items": {"type": "string", "minLength": 1, "maxLength": 253},
                },
                "rules": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 16,
                    "items": _closed(
                        {
                            "name": {"type": "string", "minLength": 1, "maxLength": 253},
                            "matches": {
                                "type": "array",
                                "maxItems": 64,
                                "items": _closed(
                                    {
                                        "path": _closed(
                                            {
                                                "type": {
                                                    "enum": [
                                                        "Exact",
                                                        "PathPrefix",
                                                        "RegularExpression",
                                                    ]
                                                },
                                                "value": {
                                                    "type": "string",
                                                    "maxLength": 1024,
                                                    "pattern": "^/",
                                                },
                                            }
                                        ),
                                        "headers": {
                                            "type": "array",
                                            "maxItems": 16,
                                            "items": _STRING_MATCH,
                                        },
                                        "queryParams": {
                                            "type": "array",
                                            "maxItems": 16,
                                            "items": _STRING_MATCH,
                                        },
                                        "method": {
                                            "enum": [
                                                "GET",
                                                "HEAD",
                                                "POST",
                                                "PUT",
                                                "DELETE",
                                                "CONNECT",
                                                "OPTIONS",
                                                "TRACE",
                                                "PATCH",
                                            ]
                                        },
                                    }
                                ),
                            },
                            "backendRefs": {
                                "type": "array",
                                "maxItems": 16,
                                "items": _closed(
                                    {
                                        "group": {"type": "string", "maxLength": 253},
                                        "kind": {"type": "string", "minLength": 1, "maxLength": 63},
                                        "name": _OBJECT_NAME,
                                        "namespace": {
                                            "type": "string",
                                            "minLength": 1,
                                            "maxLength": 63,
                                        },
                                        "port": _PORT,
                                        "weight": {
                                            "type": "integer",
                                            "minimum": 0,
                                            "maximum": 1000000,
                                        },
                                    },
                                    required=("name",),
                                ),
                            },
                            "timeouts": _closed(
                                {
                                    "request": {"type": "string"},
                                    "backendRequest": {"type": "string"},
                                }
                            ),
                        }
                    ),
                },
            }
        ),
    },
    required=("apiVersion", "kind", "metadata", "spec"),
)


def test_http_routes_have_the_gateway_api_shape() -> None:
    routes = list(_manifests(["HTTPRoute"]))
    assert routes
    for route in routes:
        _validate_schema(route, HTTPROUTE_SCHEMA, route.body)
        for index, rule in enumerate(route.body["spec"]["rules"]):
            for ref_index, ref in enumerate(rule.get("backendRefs", [])):
                if ref.get("kind", "Service") == "Service" and "port" not in ref:
                    path: list[str | int] = ["spec", "rules", index, "backendRefs", ref_index]
                    _fail(route, path, "a Service backendRef needs a port")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda spec: spec["rules"][0]["backendRefs"][0].update(weight=-1), "weight"),
        (lambda spec: spec["rules"][0]["matches"][0]["path"].update(type="Prefix"), "type"),
        (lambda spec: spec["rules"][0].update(backendRef=[]), "backendRef"),
        (lambda spec: spec["parentRefs"][0].pop("name"), "parentRefs"),
    ],
)
def test_the_http_route_schema_rejects_bad_shapes(
    change: Callable[[dict[str, Any]], object], field: str
) -> None:
    route = next(_manifests(["HTTPRoute"]))
    body = copy.deepcopy(route.to_dict())
    change(body["spec"])
    errors = _schema_errors(HTTPROUTE_SCHEMA, body)
    assert errors
    assert field in errors[0].message or field in list(errors[0].absolute_path)


# --- how the objects of each run fit together --------------------------------------------------


@pytest.fixture(scope="module")
def target() -> TargetConfig:
    return load_target_config([REPO])


def test_every_manifest_file_belongs_to_a_set(target: TargetConfig) -> None:
    used = {path for paths in target.manifest_sets.values() for path in paths}
    orphans = [_file_id(path) for path in MANIFEST_FILES if path not in used]
    assert not orphans, f"files in no [manifests] set of rollout.toml: {orphans}"


def _workloads(manifests: ManifestSet) -> list[Manifest]:
    return [m for m in manifests if m.kind in ("Deployment", "Rollout")]


def _container_ports(workload: Manifest) -> dict[str, int]:
    ports: dict[str, int] = {}
    for container in workload.body["spec"]["template"]["spec"]["containers"]:
        for port in container.get("ports", []):
            if "name" in port:
                ports[port["name"]] = port["containerPort"]
    return ports


def _check_references(manifests: ManifestSet) -> None:
    # The app's workload, and any workload deployed beside it (the canary judge).
    workloads = _workloads(manifests)
    assert workloads, "no workload"
    for workload in workloads:
        _check_workload(workload)

    for service in manifests.of_kind("Service"):
        selector = service.body["spec"]["selector"]
        owners = [w for w in workloads if not selector.items() - _pod_labels(w).items()]
        if not owners:
            _fail(service, ["spec", "selector"], f"selects none of {[w.ref for w in workloads]}")
        ports = {name for w in owners for name in _container_ports(w)}
        for index, port in enumerate(service.body["spec"]["ports"]):
            target_port = port.get("targetPort", port["port"])
            if isinstance(target_port, str) and target_port not in ports:
                where: list[str | int] = ["spec", "ports", index, "targetPort"]
                _fail(service, where, f"{target_port!r} is not a port of {owners[0].ref}")

    for route in manifests.of_kind("HTTPRoute"):
        for index, rule in enumerate(route.body["spec"]["rules"]):
            for ref_index, ref in enumerate(rule["backendRefs"]):
                service = manifests.get("Service", ref["name"])
                service_ports = [p["port"] for p in service.body["spec"]["ports"]]
                if ref["port"] not in service_ports:
                    path: list[str | int] = [
                        "spec",
                        "rules",
                        index,
                        "backendRefs",
                        ref_index,
                        "port",
                    ]
                    _fail(route, path, f"{service.ref} has ports {service_ports}")

    for workload in workloads:
        if workload.kind == "Rollout":
            _check_rollout(workload, manifests)


def _pod_labels(workload: Manifest) -> dict[str, str]:
    labels: dict[str, str] = workload.body["spec"]["template"]["metadata"]["labels"]
    return labels


def _check_workload(workload: Manifest) -> None:
    spec = workload.body["spec"]
    labels = _pod_labels(workload)
    if spec["selector"]["matchLabels"].items() - labels.items():
        _fail(workload, ["spec", "selector"], f"does not select its own pods {labels}")
    ports = _container_ports(workload)

    pod_spec = spec["template"]["spec"]
    for index, container in enumerate(pod_spec["containers"]):
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            port = container.get(probe, {}).get("httpGet", {}).get("port")
            if isinstance(port, str) and port not in ports:
                path: list[str | int] = ["spec", "template", "spec", "containers", index, probe]
                _fail(workload, path, f"port {port!r} is not a named container port {ports}")
    annotations = spec["template"]["metadata"].get("annotations", {})
    if annotations.get("prometheus.io/scrape") == "true":
        scrape_port = int(annotations["prometheus.io/port"])
        if scrape_port not in ports.values():
            _fail(workload, ["spec", "template", "metadata", "annotations"], "scrape port unknown")


def _check_rollout(rollout: Manifest, manifests: ManifestSet) -> None:
    strategy = rollout.body["spec"]["strategy"]
    if "blueGreen" in strategy:
        blue_green = strategy["blueGreen"]
        services = {blue_green["activeService"], blue_green.get("previewService", "")} - {""}
        served = {blue_green["activeService"]}
        analyses: list[tuple[list[str | int], Mapping[str, Any]]] = [
            (["spec", "strategy", "blueGreen", key], blue_green[key])
            for key in ("prePromotionAnalysis", "postPromotionAnalysis")
            if key in blue_green
        ]
    else:
        canary = strategy["canary"]
        services = {canary.get("canaryService", ""), canary.get("stableService", "")} - {""}
        served = services
        analyses = [
            (["spec", "strategy", "canary", "steps", index, "analysis"], step["analysis"])
            for index, step in enumerate(canary.get("steps", []))
            if "analysis" in step
        ]
        if "analysis" in canary:  # the background analysis
            analyses.append((["spec", "strategy", "canary", "analysis"], canary["analysis"]))
    for name in services:
        manifests.get("Service", name)
    for route in manifests.of_kind("HTTPRoute"):
        backends = {
            ref["name"] for rule in route.body["spec"]["rules"] for ref in rule["backendRefs"]
        }
        if _traffic_routed(rollout):
            _, plugin = _plugin_config(rollout)
            expected = served if route.name == plugin["httpRoute"] else backends
        else:
            # Without a traffic router the route reaches the pods through one Service: the
            # active one, or (a basic canary) one selecting every pod of both ReplicaSets.
            expected = served if "blueGreen" in strategy else backends - services
        if backends != expected or not backends:
            _fail(route, ["spec", "rules"], f"backends {sorted(backends)} != {sorted(expected)}")
    for path, analysis in analyses:
        supplied = {arg["name"] for arg in analysis.get("args", [])}
        for template_ref in analysis["templates"]:
            template = manifests.get("AnalysisTemplate", template_ref["templateName"])
            for arg in template.body["spec"].get("args", []):
                if "value" not in arg and "valueFrom" not in arg and arg["name"] not in supplied:
                    _fail(rollout, [*path, "args"], f'argument "{arg["name"]}" was not supplied')


def test_the_objects_of_every_set_refer_to_each_other(target: TargetConfig) -> None:
    for name in target.manifest_sets:
        _check_references(target.load_manifests(name))


def test_the_reference_check_catches_a_dangling_name(target: TargetConfig) -> None:
    manifests = target.load_manifests("bad-canary")
    rollout = manifests.get("Rollout", "reference-service")
    body = rollout.to_dict()
    body["spec"]["strategy"]["canary"]["canaryService"] = "reference-service-preview"
    broken = Manifest(rollout.api_version, rollout.kind, rollout.name, body, rollout.origin)
    others = [m for m in manifests if m is not rollout]
    with pytest.raises(ConfigError, match="no Service named 'reference-service-preview'"):
        _check_references(ManifestSet([*others, broken]))


def test_every_workload_runs_the_same_pod_and_only_the_control_lacks_the_probe() -> None:
    with_probe, without_probe = (
        load_manifest_file(MANIFEST_DIR / f"readiness-probe/{name}/deployment.yaml")[0]
        for name in ("with-probe", "without-probe")
    )
    reference = with_probe.body["spec"]["template"]
    for workload in _manifests(["Deployment", "Rollout"]):
        if workload.origin.path == without_probe.origin.path or not _runs_the_app(workload):
            continue
        assert _knobs_unset(workload.body["spec"]["template"]) == _knobs_unset(reference), (
            workload.origin
        )

    expected = copy.deepcopy(with_probe.to_dict())
    del expected["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    assert without_probe.body == expected
    assert "readinessProbe" in reference["spec"]["containers"][0]


# An experiment may run every version with a fault knob on (the canary-judge experiment's 1%
# background error rate); the pod is otherwise the same everywhere.
FAULT_KNOBS = ("SERVICE_BOOT_SECONDS", "SERVICE_ERROR_RATE", "SERVICE_LATENCY_MS")


def _runs_the_app(workload: Manifest) -> bool:
    containers = workload.body["spec"]["template"]["spec"]["containers"]
    return any(c["image"].startswith("pytest-rollout/reference-service:") for c in containers)


def _knobs_unset(template: Mapping[str, Any]) -> dict[str, Any]:
    """The template without what may differ between experiments: the fault knobs, and how
    often Prometheus scrapes the pod."""
    copied = copy.deepcopy(dict(template))
    copied["metadata"].get("annotations", {}).pop("prometheus.io/scrape-interval", None)
    for container in copied["spec"]["containers"]:
        for entry in container.get("env", []):
            if entry["name"] in FAULT_KNOBS:
                entry["value"] = "0"
    return copied


def test_deployments_have_a_valid_rolling_update() -> None:
    for deployment in _manifests(["Deployment"]):
        strategy = deployment.body["spec"]["strategy"]
        assert strategy["type"] == "RollingUpdate"
        rolling = RollingUpdate.from_spec(strategy.get("rollingUpdate"))
        replicas = deployment.body["spec"]["replicas"]
        assert rolling.max_unavailable_for(replicas) == 0, "no capacity may be lost"
        assert rolling.max_surge_for(replicas) >= 1


STRATEGY_COST_SETS = (
    "strategy-cost-canary",
    "strategy-cost-canary-default",
    "strategy-cost-blue-green",
    "strategy-cost-rolling",
)


def test_the_strategy_cost_sets_differ_only_in_the_strategy(target: TargetConfig) -> None:
    workloads = [_workloads(target.load_manifests(name))[0] for name in STRATEGY_COST_SETS]
    kinds = [(w.kind, w.name) for w in workloads]
    assert kinds == [
        ("Rollout", "reference-service"),
        ("Rollout", "reference-service"),
        ("Rollout", "reference-service"),
        ("Deployment", "reference-service"),
    ]
    for workload in workloads:
        spec = {k: v for k, v in workload.body["spec"].items() if k != "strategy"}
        assert spec == {k: v for k, v in workloads[0].body["spec"].items() if k != "strategy"}
        assert spec["replicas"] == 4
    strategies = [w.body["spec"]["strategy"] for w in workloads]
    dynamic, default = strategies[0]["canary"], strategies[1]["canary"]
    assert dynamic["trafficRouting"]
    assert dynamic["steps"] == default["steps"]
    # The two canaries differ by dynamic stable scaling and what goes with it: an aborted
    # canary leaves with its traffic rather than after a delay.
    assert dynamic["dynamicStableScale"] is True
    assert "dynamicStableScale" not in default
    assert {k: v for k, v in dynamic.items() if k != "dynamicStableScale"} == {
        k: v for k, v in default.items() if k != "abortScaleDownDelaySeconds"
    }
    bad_canary = _workloads(target.load_manifests("bad-canary"))[0].body["spec"]["strategy"]
    assert default == bad_canary["canary"], "the default canary runs bad-canary's strategy"
    blue_green = strategies[2]["blueGreen"]
    assert blue_green["previewService"]
    assert blue_green["prePromotionAnalysis"]
    assert blue_green["autoPromotionEnabled"] is True
    assert "scaleDownDelaySeconds" not in blue_green
    assert strategies[3]["rollingUpdate"] == {"maxSurge": "25%", "maxUnavailable": 0}
    for name in STRATEGY_COST_SETS:
        routes = target.load_manifests(name).of_kind("HTTPRoute")
        assert [route.name for route in routes] == ["reference-service"], name
