"""The install plan's order: nothing is applied into a namespace that does not exist yet, and no
custom resource before its CRD is Established — for any cluster state and any flags."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_rollout.backends.kube import plan, versions
from pytest_rollout.backends.kube.plan import (
    ApplyObjects,
    ApplyUrl,
    ClusterState,
    InstallPlan,
    WaitCondition,
    WaitCrds,
)

ALL_CRDS = sorted(plan.GATEWAY_API_CRDS + plan.ARGO_CRDS)
NAMES = [c.name for c in plan.components("amd64")]
BUILTIN_GROUPS = {"", "apps", "rbac.authorization.k8s.io", "apiextensions.k8s.io"}
CRD_OF_KIND = {
    ("gateway.networking.k8s.io", "GatewayClass"): "gatewayclasses.gateway.networking.k8s.io",
    ("gateway.networking.k8s.io", "Gateway"): "gateways.gateway.networking.k8s.io",
    ("gateway.networking.k8s.io", "HTTPRoute"): "httproutes.gateway.networking.k8s.io",
    ("argoproj.io", "Rollout"): "rollouts.argoproj.io",
    ("argoproj.io", "AnalysisTemplate"): "analysistemplates.argoproj.io",
}


def _group(obj: Mapping[str, Any]) -> str:
    api_version = str(obj["apiVersion"])
    return api_version.rpartition("/")[0] if "/" in api_version else ""


def assert_ordered(result: InstallPlan, state: ClusterState) -> None:
    """Walk the plan as kubectl would run it: each object after its Namespace (a namespace with
    install markers in it exists already), each custom resource after a wait for its CRD."""
    namespaces = {plan.SYSTEM_NAMESPACE} if state.installed else set()
    established: set[str] = set()
    for index, operation in enumerate(result.operations):
        where = f"operation {index + 1} ({operation.describe()})"
        if isinstance(operation, WaitCrds):
            established.update(operation.names)
        elif isinstance(operation, WaitCondition):
            assert operation.resource in established, where
        elif isinstance(operation, ApplyUrl) and operation.namespace is not None:
            assert operation.namespace in namespaces, where
        elif isinstance(operation, ApplyObjects):
            for obj in operation.objects:
                metadata = obj["metadata"]
                if obj["kind"] == "Namespace":
                    namespaces.add(metadata["name"])
                elif "namespace" in metadata:
                    assert metadata["namespace"] in namespaces, f"{where}: {obj['kind']}"
                group = _group(obj)
                if group not in BUILTIN_GROUPS:
                    crd = CRD_OF_KIND[(group, obj["kind"])]
                    assert crd in established, f"{where}: {obj['kind']} before its CRD"


def test_the_system_namespace_comes_before_the_first_marker_on_a_new_cluster() -> None:
    result = plan.plan_install(ClusterState(arch="amd64", crds=frozenset()), managed=True)
    first = result.operations[0]
    assert isinstance(first, ApplyObjects)
    assert [(o["kind"], o["metadata"]["name"]) for o in first.objects] == [
        ("Namespace", plan.SYSTEM_NAMESPACE)
    ]
    markers = [
        i
        for i, op in enumerate(result.operations)
        if isinstance(op, ApplyObjects) and op.objects[0]["metadata"]["name"] == plan.MARKER_NAME
    ]
    assert markers
    assert min(markers) > 0
    assert_ordered(result, ClusterState(arch="amd64", crds=frozenset()))


def test_an_existing_cluster_waits_for_the_prerequisite_crds_before_using_them() -> None:
    state = ClusterState(
        "amd64", frozenset(ALL_CRDS), argo_plugins=frozenset({versions.GATEWAY_API_PLUGIN_NAME})
    )
    result = plan.plan_install(state, managed=False)
    waits = [op for op in result.operations if isinstance(op, WaitCrds)]
    assert [w.component for w in waits] == ["gateway-api", "argo-rollouts"]
    assert_ordered(result, state)


_STATES = st.builds(
    ClusterState,
    arch=st.sampled_from(["amd64", "arm64"]),
    crds=st.frozensets(st.sampled_from(ALL_CRDS)),
    installed=st.dictionaries(st.sampled_from(NAMES), st.sampled_from(["current", "stale"])),
    argo_plugins=st.one_of(
        st.none(),
        st.frozensets(st.sampled_from([versions.GATEWAY_API_PLUGIN_NAME, "other/plugin"])),
    ),
)


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(state=_STATES, managed=st.booleans())
def test_every_object_follows_its_namespace_and_every_custom_resource_its_crd(
    state: ClusterState, managed: bool
) -> None:
    fingerprints = {c.name: c.fingerprint for c in plan.components(state.arch)}
    installed = {
        name: fingerprints[name] if mark == "current" else "old"
        for name, mark in state.installed.items()
    }
    state = ClusterState(state.arch, state.crds, installed, state.argo_plugins)
    try:
        result = plan.plan_install(state, managed=managed)
    except plan.MissingPrerequisite:
        assert not managed
        missing = set(ALL_CRDS) - state.crds
        unregistered = (
            state.argo_plugins is None or versions.GATEWAY_API_PLUGIN_NAME not in state.argo_plugins
        )
        assert missing or unregistered
        return
    assert_ordered(result, state)
