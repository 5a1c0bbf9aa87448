"""The install plan: what is applied, in which order, and what a second run leaves alone."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_rollout.backends.kube import images, plan, versions
from pytest_rollout.backends.kube.executor import command_for, kubectl_base, manifest_yaml
from pytest_rollout.backends.kube.plan import (
    ApplyObjects,
    ApplyUrl,
    BuildImage,
    ClusterState,
    LoadImageArchive,
    Operation,
    RestartDeployment,
    SaveImages,
    WaitCondition,
    WaitCrds,
    WaitDeployment,
)
from pytest_rollout.errors import ConfigError
from tests.kube import applied

ALL_CRDS = frozenset(plan.GATEWAY_API_CRDS + plan.ARGO_CRDS)
NAMES = [c.name for c in plan.components("amd64")]


def _fresh() -> ClusterState:
    return ClusterState(arch="amd64", crds=frozenset())


def _installed(arch: str = "amd64") -> ClusterState:
    fingerprints = {c.name: c.fingerprint for c in plan.components(arch)}
    return ClusterState(arch=arch, crds=ALL_CRDS, installed=fingerprints)


def _applies(operations: tuple[Operation, ...]) -> list[ApplyObjects | ApplyUrl]:
    return [op for op in operations if isinstance(op, ApplyObjects | ApplyUrl)]


def test_a_new_cluster_gets_everything_in_dependency_order() -> None:
    result = plan.plan_install(_fresh(), managed=True)
    assert result.applied == (
        "rollout-system",
        "gateway-api",
        "traefik",
        "argo-rollouts",
        "prometheus",
    )
    assert result.current == ()
    assert result.required == ()
    described = result.describe()
    first = {
        name: next(i for i, line in enumerate(described) if f"[{name}]" in line) for name in NAMES
    }
    assert sorted(first, key=first.__getitem__) == NAMES
    # CRDs are established before anything of their kinds is created.
    crds_ready = described.index(
        next(line for line in described if "[gateway-api] wait for CRDs" in line)
    )
    traefik_apply = described.index(next(line for line in described if "[traefik] apply" in line))
    assert crds_ready < traefik_apply
    # No restarts on a first install: nothing ran before with another configuration.
    assert not any(isinstance(op, RestartDeployment) for op in result.operations)


def test_each_component_is_recorded_only_after_its_health_checks() -> None:
    result = plan.plan_install(_fresh(), managed=True)
    for name in result.applied:
        ops = [op for op in result.operations if getattr(op, "component", None) == name]
        marker = ops[-1]
        assert isinstance(marker, ApplyObjects)
        (configmap,) = marker.objects
        assert configmap["metadata"]["name"] == plan.MARKER_NAME
        assert configmap["data"] == {
            name: next(c for c in plan.components("amd64") if c.name == name).fingerprint
        }
        assert marker.field_manager.endswith(f"marker-{name}")


def test_argo_rollouts_gets_its_plugin_configuration_before_the_controller_starts() -> None:
    result = plan.plan_install(_fresh(), managed=True)
    argo = [op for op in result.operations if getattr(op, "component", None) == "argo-rollouts"]
    assert isinstance(argo[0], ApplyObjects)
    assert ("ConfigMap", "argo-rollouts-config") in {
        (o["kind"], o["metadata"]["name"]) for o in argo[0].objects
    }
    assert isinstance(argo[1], ApplyUrl)
    assert argo[1].url == versions.ARGO_ROLLOUTS_INSTALL_URL
    assert argo[1].namespace == plan.ARGO_NAMESPACE
    # Different field managers: the upstream ConfigMap (without data) never removes ours.
    assert argo[0].field_manager != argo[1].field_manager


def test_a_second_run_applies_nothing_and_only_checks_health() -> None:
    result = plan.plan_install(_installed(), managed=True)
    assert result.applied == ()
    assert result.current == tuple(NAMES)
    assert not _applies(result.operations)
    kinds = {type(op) for op in result.operations}
    assert kinds == {WaitCrds, WaitDeployment, WaitCondition}


def test_a_changed_version_reinstalls_that_component_and_restarts_what_reads_config_at_start() -> (
    None
):
    state = _installed()
    outdated = dict(state.installed, **{"argo-rollouts": "v1.8.0+000000000000"})
    result = plan.plan_install(ClusterState("amd64", ALL_CRDS, outdated), managed=True)
    assert result.applied == ("argo-rollouts",)
    restarts = [op for op in result.operations if isinstance(op, RestartDeployment)]
    assert restarts == [RestartDeployment("argo-rollouts", plan.ARGO_NAMESPACE, "argo-rollouts")]
    assert {op.component for op in _applies(result.operations)} == {"argo-rollouts"}


def test_deleted_crds_are_reinstalled_even_with_a_current_marker() -> None:
    state = _installed()
    without_argo = ClusterState("amd64", frozenset(plan.GATEWAY_API_CRDS), state.installed)
    assert plan.plan_install(without_argo, managed=True).applied == ("argo-rollouts",)


def test_the_plugin_follows_the_node_architecture() -> None:
    amd, arm = plan.components("amd64"), plan.components("arm64")
    assert [c.fingerprint for c in amd] != [c.fingerprint for c in arm]
    with pytest.raises(ConfigError, match="'s390x'"):
        plan.components("s390x")


def test_an_existing_cluster_without_argo_is_a_clear_error() -> None:
    state = ClusterState("amd64", frozenset(plan.GATEWAY_API_CRDS))
    with pytest.raises(plan.MissingPrerequisite) as info:
        plan.plan_install(state, managed=False)
    message = str(info.value)
    assert "\n" not in message
    assert "missing CRDs rollouts.argoproj.io, analysisruns.argoproj.io" in message
    assert versions.ARGO_ROLLOUTS in message
    assert "--rollout-kubeconfig" in message


def test_an_existing_cluster_without_the_gateway_plugin_is_a_clear_error() -> None:
    state = ClusterState("amd64", ALL_CRDS, argo_plugins=frozenset({"other/plugin"}))
    with pytest.raises(
        plan.MissingPrerequisite, match="argoproj-labs/gatewayAPI is not registered"
    ):
        plan.plan_install(state, managed=False)


def test_an_existing_cluster_gets_only_the_plugins_own_pieces() -> None:
    state = ClusterState(
        "amd64", ALL_CRDS, argo_plugins=frozenset({versions.GATEWAY_API_PLUGIN_NAME})
    )
    result = plan.plan_install(state, managed=False)
    assert result.required == ("gateway-api", "argo-rollouts")
    assert result.applied == ("rollout-system", "traefik", "prometheus")
    assert not any(isinstance(op, ApplyUrl) for op in result.operations)


@pytest.mark.slow
@settings(max_examples=60, deadline=None)
@given(
    markers=st.dictionaries(st.sampled_from(NAMES), st.sampled_from(["current", "stale"])),
    crds=st.sets(st.sampled_from(sorted(ALL_CRDS))),
)
def test_every_component_is_either_applied_or_checked(
    markers: dict[str, str], crds: set[str]
) -> None:
    fingerprints = {c.name: c.fingerprint for c in plan.components("amd64")}
    installed = {n: fingerprints[n] if v == "current" else "old" for n, v in markers.items()}
    result = plan.plan_install(ClusterState("amd64", frozenset(crds), installed), managed=True)
    assert sorted(result.applied + result.current) == sorted(NAMES)
    for component in plan.components("amd64"):
        ops = [op for op in result.operations if getattr(op, "component", None) == component.name]
        applies = [op for op in ops if isinstance(op, ApplyObjects | ApplyUrl)]
        if component.name in result.current:
            assert not applies
            assert markers.get(component.name) == "current"
            assert set(component.crds) <= crds
        else:
            assert isinstance(ops[-1], ApplyObjects)
            assert ops[-1].objects[0]["kind"] == "ConfigMap"
            restarts = [op for op in ops if isinstance(op, RestartDeployment)]
            assert bool(restarts) == (
                component.name in installed and bool(component.restart_on_upgrade)
            )


# --- the commands the executor runs --------------------------------------------------------------

KUBECTL = kubectl_base("kubectl", Path("/tmp/kc"), "kind-x")


def _argv(op: Operation) -> list[str]:
    return command_for(op, kubectl=KUBECTL, kind="kind", docker="docker", manifest=Path("/m.yaml"))


def test_commands_are_server_side_applies_and_bounded_waits() -> None:
    assert KUBECTL == ["kubectl", "--kubeconfig", "/tmp/kc", "--context", "kind-x"]
    assert _argv(ApplyObjects("c", (), "pytest-rollout-c")) == [
        *KUBECTL, "apply", "--server-side", "--force-conflicts",
        "--field-manager=pytest-rollout-c", "-f", "/m.yaml",
    ]  # fmt: skip
    assert _argv(ApplyUrl("c", "https://x/install.yaml", "m", "argo-rollouts"))[-4:] == [
        "-n", "argo-rollouts", "-f", "https://x/install.yaml",
    ]  # fmt: skip
    assert _argv(WaitCrds("c", ("a.b", "c.d")))[-3:] == ["--timeout=300s", "crd/a.b", "crd/c.d"]
    assert _argv(WaitDeployment("c", "ns", "d"))[len(KUBECTL):] == [
        "rollout", "status", "deployment/d", "-n", "ns", "--timeout=300s",
    ]  # fmt: skip
    assert (
        _argv(WaitCondition("c", "gateways.gateway.networking.k8s.io", "ns", "g", "Accepted"))[-1]
        == "gateways.gateway.networking.k8s.io/g"
    )
    assert _argv(RestartDeployment("c", "ns", "d"))[len(KUBECTL):] == [
        "rollout", "restart", "deployment/d", "-n", "ns",
    ]  # fmt: skip
    assert _argv(BuildImage(("a:1", "a:dev"), Path("/ctx"), Path("/ctx/Dockerfile"))) == [
        "docker", "build", "-f", "/ctx/Dockerfile", "-t", "a:1", "-t", "a:dev", "/ctx",
    ]  # fmt: skip
    assert _argv(SaveImages(("a:1", "a:dev"), Path("/w/images-x.tar"), "linux/arm64")) == [
        "docker", "save", "--platform", "linux/arm64", "-o", "/w/images-x.tar", "a:1", "a:dev",
    ]  # fmt: skip
    assert _argv(LoadImageArchive("x", Path("/w/images-x.tar"))) == [
        "kind", "load", "image-archive", "/w/images-x.tar", "--name", "x",
    ]  # fmt: skip


def test_applied_yaml_round_trips() -> None:
    op = next(
        op
        for op in plan.plan_install(_fresh(), managed=True).operations
        if isinstance(op, ApplyObjects)
    )
    assert list(yaml.safe_load_all(manifest_yaml(op))) == list(op.objects)


# --- images ------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", applied.ARCHITECTURES)
def test_each_image_is_built_once_and_loaded_into_kind_as_an_archive(
    arch: str, tmp_path: Path
) -> None:
    target = applied.target()
    operations = images.plan_images(
        target, kind_cluster="pytest-rollout", arch=arch, workdir=tmp_path
    )
    *builds, save, load = operations
    built = [build for build in builds if isinstance(build, BuildImage)]
    assert len(built) == len(builds)
    tags = tuple(tag for build in built for tag in build.tags)
    assert sorted(tags) == [
        "pytest-rollout/canary-judge:dev",
        "pytest-rollout/reference-service:dev",
    ]
    for build in built:
        run = target.image(build.tags[0])
        assert run.build is not None
        assert (build.context, build.dockerfile) == (run.build.context, run.build.dockerfile)
    # Only the nodes' platform goes into the archive: it imports with either image store.
    assert save == SaveImages(tags, tmp_path / "images-pytest-rollout.tar", f"linux/{arch}")
    assert load == LoadImageArchive("pytest-rollout", save.archive)
    unloaded = images.plan_images(target, kind_cluster=None, arch=arch, workdir=tmp_path)
    assert unloaded == built


def test_image_references_cover_init_containers_and_variant_images() -> None:
    spec = {
        "initContainers": [{"name": "m", "image": "a:1"}],
        "containers": [{"name": "c", "image": "b:2"}],
    }
    assert images.pod_images(spec) == ["a:1", "b:2"]
