"""How the target's manifests become a test namespace's objects on a cluster."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_rollout.backends import namespace_name
from pytest_rollout.backends.kube import render
from pytest_rollout.errors import ConfigError
from tests.kube import applied
from tests.kube.schemas import GATEWAY_SCHEMAS, schema_errors

DSN = "postgresql+psycopg://orders:orders@postgres:5432/orders"
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def _route(rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "web"},
        "spec": {
            "parentRefs": [{"name": "rollout-gateway", "namespace": "rollout-system"}],
            "rules": rules,
        },
    }


def _backend() -> list[dict[str, Any]]:
    return [{"name": "web", "port": 80}]


def test_every_object_gets_the_namespace_and_workloads_get_the_backend_env() -> None:
    target = applied.target()
    env = target.backend_env("kube")
    objects = render.namespace_objects(target.load_manifests("bad-canary"), "ns-1", env)
    assert {obj["metadata"]["namespace"] for obj in objects} == {"ns-1"}
    (rollout,) = [obj for obj in objects if obj["kind"] == "Rollout"]
    pod = rollout["spec"]["template"]["spec"]
    for container in [*pod["initContainers"], *pod["containers"]]:
        values = {e["name"]: e.get("value") for e in container["env"]}
        assert values["SERVICE_DATABASE_URL"] == DSN, container["name"]
    # The manifests themselves are left untouched.
    manifest = target.load_manifests("bad-canary").get("Rollout", "reference-service")
    assert "SERVICE_DATABASE_URL" not in str(manifest.body)


def test_backend_env_replaces_an_existing_value_and_its_value_from() -> None:
    spec: dict[str, Any] = {
        "containers": [
            {
                "name": "c",
                "env": [
                    {"name": "A", "value": "1"},
                    {"name": "DB", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
                ],
            }
        ]
    }
    changed = render.with_env(spec, {"DB": "x", "B": "2"})
    assert changed["containers"][0]["env"] == [
        {"name": "A", "value": "1"},
        {"name": "DB", "value": "x"},
        {"name": "B", "value": "2"},
    ]
    assert spec["containers"][0]["env"][1]["valueFrom"], "the input is not modified"
    assert render.with_env(spec, {}) == spec


def test_a_release_patch_carries_the_variant_and_keeps_the_backend_env() -> None:
    target = applied.target()
    env = target.backend_env("kube")
    (rollout,) = [
        obj
        for obj in render.namespace_objects(target.load_manifests("bad-canary"), "ns", env)
        if obj["kind"] == "Rollout"
    ]
    variant = target.variant("bad")
    patch = render.release_patch(rollout, variant, env)
    assert set(patch) == {"spec"}
    assert set(patch["spec"]["template"]["spec"]) == {
        "containers",
        "initContainers",
    }
    (app,) = patch["spec"]["template"]["spec"]["containers"]
    values = {e["name"]: e["value"] for e in app["env"]}
    assert values["SERVICE_VERSION"] == "v2-bad"
    assert values["SERVICE_ERROR_RATE"] == "0.5"
    assert values["SERVICE_DATABASE_URL"] == DSN
    released = applied.merge_patch(rollout, patch)
    assert released["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    assert released["spec"]["strategy"] == rollout["spec"]["strategy"]


def test_the_route_moves_under_its_own_prefix_with_a_rewrite_back() -> None:
    route = render.prefixed_route(
        _route(
            [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/api/"}}],
                    "backendRefs": _backend(),
                }
            ]
        ),
        "ns-1",
        "route.yaml",
    )
    (rule,) = route["spec"]["rules"]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/ns-1/web/api"}}]
    assert rule["filters"] == [
        {
            "type": "URLRewrite",
            "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/api/"}},
        }
    ]
    assert not schema_errors(GATEWAY_SCHEMAS["HTTPRoute"], route)


def test_a_rule_without_matches_is_the_whole_path() -> None:
    route = render.prefixed_route(_route([{"backendRefs": _backend()}]), "ns", "r.yaml")
    (rule,) = route["spec"]["rules"]
    assert rule["matches"][0]["path"] == {"type": "PathPrefix", "value": "/ns/web"}
    assert rule["filters"][0]["urlRewrite"]["path"]["replacePrefixMatch"] == "/"


def test_headers_and_other_filters_are_kept() -> None:
    match = {"path": {"type": "PathPrefix", "value": "/"}, "headers": [{"name": "x", "value": "y"}]}
    header_filter = {"type": "RequestHeaderModifier"}
    route = render.prefixed_route(
        _route([{"matches": [match], "filters": [header_filter], "backendRefs": _backend()}]),
        "ns",
        "r.yaml",
    )
    (rule,) = route["spec"]["rules"]
    assert rule["matches"][0]["headers"] == [{"name": "x", "value": "y"}]
    assert rule["filters"][0] == header_filter
    assert rule["filters"][1]["type"] == "URLRewrite"


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (
            {"matches": [{"path": {"value": "/a"}}, {"path": {"value": "/b"}}]},
            "exactly one match per rule",
        ),
        ({"matches": [{"path": {"type": "Exact", "value": "/a"}}]}, "needs a PathPrefix match"),
        (
            {"filters": [{"type": "URLRewrite", "urlRewrite": {"hostname": "h"}}]},
            "URLRewrite filter cannot be combined",
        ),
    ],
)
def test_route_shapes_the_prefix_cannot_carry_are_errors(
    rule: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        render.prefixed_route(_route([rule]), "ns", "route.yaml")
    assert str(info.value).startswith("route.yaml: spec.rules[0]")


@given(st.text(min_size=1, max_size=200))
def test_namespaces_and_their_labels_are_valid_for_any_test_name(test: str) -> None:
    name = namespace_name(test)
    obj = render.namespace_object(name, test)
    label = obj["metadata"]["labels"]["pytest-rollout.io/test"]
    assert 0 < len(label) <= 63, label
    assert _LABEL_VALUE.match(label), label
    prefix = render.route_prefix(name, "reference-service")
    assert prefix.startswith("/")
    assert " " not in prefix


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"SERVICE_DATABASE_URL": DSN}, True),
        ({"DB": "postgres://u:p@postgres/orders"}, True),
        ({"DB": "postgresql://u:p@db.example:5432/orders"}, False),
        ({"DB": "sqlite:////data/x.db"}, False),
        ({}, False),
    ],
)
def test_a_namespace_gets_postgres_only_when_the_target_points_at_it(
    env: dict[str, str], expected: bool
) -> None:
    assert render.needs_postgres(env) is expected


def test_other_kinds_pass_through_unchanged_but_for_the_namespace() -> None:
    target = applied.target()
    services = target.load_manifests("bad-canary").of_kind("Service")
    objects = render.namespace_objects(services, "ns", {"X": "1"})
    for manifest, obj in zip(services, objects, strict=True):
        expected = copy.deepcopy(dict(manifest.body))
        expected["metadata"]["namespace"] = "ns"
        assert obj == expected


def test_listed_prometheus_addresses_are_rewritten_to_the_installed_one() -> None:
    template: dict[str, Any] = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": "errors"},
        "spec": {
            "args": [
                {"name": "prom", "value": "http://prometheus.monitoring:9090"},
                {"name": "other", "value": "http://grafana:3000"},
            ],
            "metrics": [
                {
                    "name": "a",
                    "provider": {"prometheus": {"address": "http://prometheus.monitoring:9090"}},
                },
                {"name": "b", "provider": {"prometheus": {"address": "{{args.prom}}"}}},
                {"name": "c", "provider": {"web": {"url": "http://prometheus.monitoring:9090/x"}}},
            ],
        },
    }
    installed = "http://prometheus.rollout-system.svc.cluster.local:9090"
    rewritten = render.with_prometheus(template, {"http://prometheus.monitoring:9090": installed})
    assert rewritten["spec"]["args"][0]["value"] == installed
    assert rewritten["spec"]["args"][1]["value"] == "http://grafana:3000"
    metrics = rewritten["spec"]["metrics"]
    assert metrics[0]["provider"]["prometheus"]["address"] == installed
    assert metrics[1]["provider"]["prometheus"]["address"] == "{{args.prom}}"
    assert metrics[2]["provider"]["web"]["url"] == "http://prometheus.monitoring:9090/x"
    assert template["spec"]["args"][0]["value"] == "http://prometheus.monitoring:9090"
