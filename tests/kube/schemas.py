"""Offline validation of what the kube backend applies, shared by its tests.

It reuses what ``tests/core/test_manifest_schemas.py`` already pins for the fixture manifests
(the Kubernetes minors, the Argo Rollouts CRDs, the HTTPRoute shape) and adds the Gateway API
kinds and the route filter the kube backend writes.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import kubernetes_validate

from tests.core.test_manifest_schemas import (
    ARGO_CRDS,
    ARGO_GROUP,
    GATEWAY_GROUP,
    HTTPROUTE_SCHEMA,
    KUBERNETES_VERSIONS,
    _argo_schemas,
    _closed,
    _schema_errors,
)

__all__ = [
    "ARGO_CRDS",
    "ARGO_GROUP",
    "GATEWAY_GROUP",
    "KUBERNETES_VERSIONS",
    "argo_crds_available",
    "kube_errors",
    "schema_errors",
    "validate",
]

_NAME = {"type": "string", "minLength": 1, "maxLength": 253}
# GatewayController: a domain-prefixed path, as the Gateway API types validate it.
_CONTROLLER_NAME = (
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
    r"/[A-Za-z0-9/\-._~%!$&'()*+,;=:]+$"
)


def _route_schema() -> dict[str, Any]:
    """The fixtures' HTTPRoute shape plus the ``URLRewrite`` filter the backend adds (limits and
    enums of ``HTTPURLRewriteFilter``/``HTTPPathModifier`` in the Gateway API types)."""
    schema = copy.deepcopy(HTTPROUTE_SCHEMA)
    path_modifier = _closed(
        {
            "type": {"enum": ["ReplaceFullPath", "ReplacePrefixMatch"]},
            "replaceFullPath": {"type": "string", "maxLength": 1024},
            "replacePrefixMatch": {"type": "string", "maxLength": 1024, "pattern": "^/"},
        },
        required=("type",),
    )
    url_rewrite = _closed({"hostname": {"type": "string", "maxLength": 253}, "path": path_modifier})
    rule = schema["properties"]["spec"]["properties"]["rules"]["items"]
    rule["properties"]["filters"] = {
        "type": "array",
        "maxItems": 16,
        "items": _closed(
            {
                "type": {"enum": ["URLRewrite", "RequestHeaderModifier", "ResponseHeaderModifier"]},
                "urlRewrite": url_rewrite,
            },
            required=("type",),
        ),
    }
    return schema


def _metadata(namespaced: bool) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "name": _NAME,
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    }
    if namespaced:
        properties["namespace"] = {"type": "string", "minLength": 1, "maxLength": 63}
    return _closed(properties, required=("name", "namespace") if namespaced else ("name",))


GATEWAY_SCHEMAS: dict[str, dict[str, Any]] = {
    "HTTPRoute": _route_schema(),
    "GatewayClass": _closed(
        {
            "apiVersion": {"const": f"{GATEWAY_GROUP}/v1"},
            "kind": {"const": "GatewayClass"},
            "metadata": _metadata(namespaced=False),
            "spec": _closed(
                {
                    "controllerName": {
                        "type": "string",
                        "maxLength": 253,
                        "pattern": _CONTROLLER_NAME,
                    },
                    "description": {"type": "string", "maxLength": 64},
                },
                required=("controllerName",),
            ),
        },
        required=("apiVersion", "kind", "metadata", "spec"),
    ),
    "Gateway": _closed(
        {
            "apiVersion": {"const": f"{GATEWAY_GROUP}/v1"},
            "kind": {"const": "Gateway"},
            "metadata": _metadata(namespaced=True),
            "spec": _closed(
                {
                    "gatewayClassName": {"type": "string", "minLength": 1, "maxLength": 253},
                    "listeners": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": 64,
                        "items": _closed(
                            {
                                "name": {"type": "string", "minLength": 1, "maxLength": 253},
                                "hostname": {"type": "string", "maxLength": 253},
                                "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                                "protocol": {"enum": ["HTTP", "HTTPS", "TLS", "TCP", "UDP"]},
                                "allowedRoutes": _closed(
                                    {
                                        "namespaces": _closed(
                                            {"from": {"enum": ["All", "Same", "Selector"]}}
                                        )
                                    }
                                ),
                            },
                            required=("name", "port", "protocol"),
                        ),
                    },
                },
                required=("gatewayClassName", "listeners"),
            ),
        },
        required=("apiVersion", "kind", "metadata", "spec"),
    ),
}


def argo_crds_available() -> bool:
    return ARGO_CRDS.is_dir() and any(ARGO_CRDS.glob("*.yaml"))


def schema_errors(schema: Mapping[str, Any], body: Mapping[str, Any]) -> list[str]:
    return [
        f"{'.'.join(str(p) for p in error.absolute_path) or '(root)'}: {error.message}"
        for error in _schema_errors(dict(schema), body)
    ]


def kube_errors(body: Mapping[str, Any], version: str) -> list[str]:
    """kubernetes-validate in strict mode (unknown fields are errors)."""
    try:
        kubernetes_validate.validate(dict(body), version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{'.'.join(str(p) for p in exc.path)}: Kubernetes {exc.version}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError as exc:
        return [f"kind: {exc.message}"]
    return []


def validate(body: Mapping[str, Any], version: str) -> list[str]:
    """Every problem the schemas find in one object; the Argo kinds only when the CRDs are at
    hand (the caller skips those otherwise)."""
    api_version = str(body.get("apiVersion", ""))
    group = api_version.rpartition("/")[0]
    kind = str(body.get("kind", ""))
    if group == GATEWAY_GROUP:
        if kind not in GATEWAY_SCHEMAS:
            return [f"kind: no schema for Gateway API kind {kind}"]
        return schema_errors(GATEWAY_SCHEMAS[kind], body)
    if group == ARGO_GROUP:
        schema = _argo_schemas().get((api_version, kind))
        if schema is None:
            return [f"kind: no Argo Rollouts CRD for {api_version} {kind}"]
        return schema_errors(schema, body)
    return kube_errors(body, version)
