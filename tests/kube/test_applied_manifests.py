"""Every object the kube backend applies validates offline, for every Kubernetes minor of the
CI matrix: Kubernetes kinds with kubernetes-validate (strict), Argo kinds against the Argo
Rollouts CRDs (when at hand), Gateway API kinds against structural schemas of their fields."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pytest_rollout.backends.kube import versions
from pytest_rollout.backends.kube.resources import KubeObject
from tests.kube import applied
from tests.kube.schemas import (
    ARGO_CRDS,
    ARGO_GROUP,
    GATEWAY_SCHEMAS,
    KUBERNETES_VERSIONS,
    argo_crds_available,
    schema_errors,
    validate,
)

pytestmark = pytest.mark.slow  # starts real processes, or renders for seconds

GROUPS: dict[str, Callable[[], Iterator[tuple[str, KubeObject]]]] = {
    "install": applied.install_objects,
    "namespace": lambda: applied.namespace_objects(applied.target()),
    "releases": lambda: applied.released_workloads(applied.target()),
}


def _problems(group: str, version: str, *, argo: bool) -> tuple[int, list[str]]:
    checked = 0
    problems: list[str] = []
    for where, obj in GROUPS[group]():
        if (str(obj.get("apiVersion", "")).startswith(f"{ARGO_GROUP}/")) != argo:
            continue
        checked += 1
        problems.extend(f"{where}: {problem}" for problem in validate(obj, version))
    return checked, problems


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("group", sorted(GROUPS))
def test_kubernetes_and_gateway_kinds_validate(group: str, version: str) -> None:
    checked, problems = _problems(group, version, argo=False)
    assert checked, f"nothing to check in {group}"
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_argo_kinds_validate_against_the_crds(group: str) -> None:
    if not argo_crds_available():
        pytest.skip(f"Argo Rollouts CRDs not found in {ARGO_CRDS} (PYTEST_ROLLOUT_ARGO_CRDS)")
    checked, problems = _problems(group, KUBERNETES_VERSIONS[-1], argo=True)
    if group == "install":
        assert checked == 0, "the install set applies no Argo objects itself"
    else:
        assert checked, f"no Rollout or AnalysisTemplate in {group}"
    assert not problems, "\n".join(problems)


def test_the_matrix_is_the_pinned_node_images() -> None:
    assert tuple(versions.KIND_NODE_IMAGES) == KUBERNETES_VERSIONS
    for minor, image in versions.KIND_NODE_IMAGES.items():
        assert versions.node_image_version(image).startswith(f"v{minor}."), image
        assert "@sha256:" in image, image
        assert len(image.rpartition(":")[2]) == 64, image


def _route() -> KubeObject:
    for where, obj in applied.namespace_objects(applied.target()):
        if obj["kind"] == "HTTPRoute" and where.startswith("bad-canary/"):
            return obj
    raise AssertionError("no HTTPRoute in the bad-canary set")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (
            lambda rule: rule["filters"][0]["urlRewrite"]["path"].update(type="ReplacePrefix"),
            "type",
        ),
        (lambda rule: rule["filters"][0]["urlRewrite"]["path"].update(replacePrefixMatch="x"), "x"),
        (lambda rule: rule["filters"][0].update(urlRewrit={}), "urlRewrit"),
        (lambda rule: rule["filters"][0].pop("type"), "type"),
    ],
)
def test_the_route_schema_rejects_a_broken_rewrite(
    change: Callable[[dict[str, Any]], object], field: str
) -> None:
    route = copy.deepcopy(_route())
    assert not schema_errors(GATEWAY_SCHEMAS["HTTPRoute"], route)
    change(route["spec"]["rules"][0])
    errors = schema_errors(GATEWAY_SCHEMAS["HTTPRoute"], route)
    assert errors
    assert any(field in error for error in errors), errors


def test_kubernetes_validation_catches_a_typo_in_an_install_object() -> None:
    deployment = next(
        copy.deepcopy(obj) for _, obj in applied.install_objects() if obj["kind"] == "Deployment"
    )
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProb"] = {}
    problems = validate(deployment, KUBERNETES_VERSIONS[-1])
    assert problems
    assert "readinessProb" in problems[0]
