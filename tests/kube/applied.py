"""Everything the kube backend sends to a cluster, rendered here without one."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pytest_rollout.backends.kube import plan, render
from pytest_rollout.backends.kube.resources import KubeObject, ref
from pytest_rollout.config import TargetConfig
from pytest_rollout.config_file import load_target_config

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "test-bad-canary-param-1-a1b2c3"
ARCHITECTURES = ("amd64", "arm64")


def target() -> TargetConfig:
    return load_target_config([REPO])


def install_objects() -> Iterator[tuple[str, KubeObject]]:
    """The install set for every node architecture, markers included."""
    for arch in ARCHITECTURES:
        for component in plan.components(arch):
            for obj in component.objects:
                yield f"{arch}/{component.name}/{ref(obj)}", obj
            (configmap,) = plan.marker(component).objects
            yield f"{arch}/{component.name}/marker", configmap


def namespace_objects(config: TargetConfig) -> Iterator[tuple[str, KubeObject]]:
    """A test namespace's objects: the namespace, its database, every manifest set."""
    yield "namespace", render.namespace_object(NAMESPACE, "test_bad_canary[param-1]")
    for obj in render.postgres_objects(NAMESPACE):
        yield f"postgres/{ref(obj)}", obj
    env = config.backend_env("kube")
    for name in config.manifest_sets:
        for obj in render.namespace_objects(config.load_manifests(name), NAMESPACE, env):
            yield f"{name}/{ref(obj)}", obj


def released_workloads(config: TargetConfig) -> Iterator[tuple[str, KubeObject]]:
    """Every workload after every variant's release patch, as the API server stores it."""
    env = config.backend_env("kube")
    for name in config.manifest_sets:
        for obj in render.namespace_objects(config.load_manifests(name), NAMESPACE, env):
            if obj["kind"] not in render.WORKLOAD_KINDS:
                continue
            for variant in config.variants.values():
                patch = render.release_patch(obj, variant, env)
                yield f"{name}/{ref(obj)}+{variant.name}", merge_patch(obj, patch)


def merge_patch(target: Mapping[str, Any], patch: Mapping[str, Any]) -> KubeObject:
    """RFC 7386 JSON merge patch, as the API server applies ``application/merge-patch+json``."""
    result = copy.deepcopy(dict(target))
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = merge_patch(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result
