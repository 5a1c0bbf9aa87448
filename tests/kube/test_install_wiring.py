"""The pieces of the install fit each other and the fixtures: ports, names, addresses,
credentials, the plugin registration and Prometheus's configuration."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from pytest_rollout.backends.kube import plan, render, resources, versions
from pytest_rollout.backends.kube.api import traffic_router_plugins
from pytest_rollout.backends.kube.resources import KubeObject
from pytest_rollout.errors import ConfigError
from tests.kube import applied

FIXTURES = resources.data_dir()


def _objects(arch: str = "amd64") -> dict[tuple[str, str], KubeObject]:
    found: dict[tuple[str, str], KubeObject] = {}
    for component in plan.components(arch):
        for obj in component.objects:
            found[(obj["kind"], obj["metadata"]["name"])] = obj
    return found


def _container(obj: KubeObject) -> dict[str, Any]:
    containers: list[dict[str, Any]] = obj["spec"]["template"]["spec"]["containers"]
    return containers[0]


def test_kind_maps_the_gateway_and_prometheus_node_ports_to_loopback() -> None:
    config = yaml.safe_load((FIXTURES / "kind-config.yaml").read_text())
    assert config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    (node,) = config["nodes"]
    mappings = {m["containerPort"]: m for m in node["extraPortMappings"]}
    assert set(mappings) == {plan.GATEWAY_NODE_PORT, plan.PROMETHEUS_NODE_PORT}
    for mapping in mappings.values():
        assert mapping["listenAddress"] == "127.0.0.1"
        assert mapping["protocol"] == "TCP"
    objects = _objects()
    traefik = objects[("Service", "traefik")]["spec"]["ports"][0]
    prometheus = objects[("Service", "prometheus-nodeport")]["spec"]["ports"][0]
    assert traefik["nodePort"] == plan.GATEWAY_NODE_PORT
    assert prometheus["nodePort"] == plan.PROMETHEUS_NODE_PORT


def test_the_gateway_listens_where_traefik_does() -> None:
    objects = _objects()
    gateway = objects[("Gateway", plan.GATEWAY_NAME)]
    gateway_class = objects[("GatewayClass", gateway["spec"]["gatewayClassName"])]
    assert gateway["metadata"]["namespace"] == plan.SYSTEM_NAMESPACE
    assert gateway_class["spec"]["controllerName"] == "traefik.io/gateway-controller"
    (listener,) = gateway["spec"]["listeners"]
    assert listener["allowedRoutes"]["namespaces"]["from"] == "All"
    traefik = _container(objects[("Deployment", "traefik")])
    assert f"--entryPoints.web.address=:{listener['port']}" in traefik["args"]
    ports = {p["name"]: p["containerPort"] for p in traefik["ports"]}
    service_port = objects[("Service", "traefik")]["spec"]["ports"][0]
    assert ports[service_port["targetPort"]] == listener["port"]
    assert (objects[("Service", "traefik")]["metadata"]["name"], service_port["port"]) == (
        plan.GATEWAY_SERVICE
    )


def test_every_fixture_route_attaches_to_the_installed_gateway() -> None:
    config = applied.target()
    for name in config.manifest_sets:
        for route in config.load_manifests(name).of_kind("HTTPRoute"):
            for parent in route.body["spec"]["parentRefs"]:
                assert (parent["namespace"], parent["name"]) == (
                    plan.SYSTEM_NAMESPACE,
                    plan.GATEWAY_NAME,
                ), route.origin


def test_analysis_templates_find_the_installed_prometheus() -> None:
    objects = _objects()
    service = objects[("Service", plan.PROMETHEUS_SERVICE[0])]
    port = service["spec"]["ports"][0]["port"]
    assert port == plan.PROMETHEUS_SERVICE[1]
    expected = (
        f"http://{service['metadata']['name']}.{plan.SYSTEM_NAMESPACE}.svc.cluster.local:{port}"
    )
    config = applied.target()
    seen = 0
    for name in config.manifest_sets:
        for template in config.load_manifests(name).of_kind("AnalysisTemplate"):
            for arg in template.body["spec"].get("args", []):
                if arg["name"] == "prometheus-address":
                    seen += 1
                    assert arg["value"] == expected, template.origin
    assert seen


def test_prometheus_labels_series_like_the_local_backend() -> None:
    configmap = _objects()[("ConfigMap", "prometheus-config")]
    config = yaml.safe_load(configmap["data"]["prometheus.yml"])
    assert config["global"]["scrape_interval"] == "1s"
    pods = next(job for job in config["scrape_configs"] if job["job_name"] == "kubernetes-pods")
    rules = pods["relabel_configs"]
    targets = {rule.get("target_label") for rule in rules}
    assert {"namespace", "pod", "__address__", "__metrics_path__"} <= targets
    assert any(
        rule.get("action") == "labelmap" and rule["regex"] == "__meta_kubernetes_pod_label_(.+)"
        for rule in rules
    )
    keep = rules[0]
    assert keep["action"] == "keep"
    assert keep["source_labels"] == ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"]


def test_the_prometheus_configuration_passes_promtool(tmp_path: Path) -> None:
    """promtool checks everything but the discovery: Debian's Prometheus builds (this machine's,
    the Ubuntu runners') leave kubernetes_sd out, so each job's ``kubernetes_sd_configs`` is
    swapped for a static target after its role is checked here."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (it comes with the prometheus package)")
    text = _objects()[("ConfigMap", "prometheus-config")]["data"]["prometheus.yml"]
    config = yaml.safe_load(text)
    roles = {job["job_name"]: job.pop("kubernetes_sd_configs") for job in config["scrape_configs"]}
    assert roles == {
        "kubernetes-pods": [{"role": "pod"}],
        "kubernetes-cadvisor": [{"role": "node"}],
    }
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": ["127.0.0.1:9"]}]
        # promtool checks that referenced files exist; in the pod they are the service account's.
        for section, key in (("authorization", "credentials_file"), ("tls_config", "ca_file")):
            if key in job.get(section, {}):
                stand_in = tmp_path / Path(job[section][key]).name
                stand_in.write_text("x")
                job[section][key] = str(stand_in)
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [promtool, "check", "config", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    broken = config | {"global": {"scrape_interval": "1s", "scrape_timeout": "5s"}}
    path.write_text(yaml.safe_dump(broken))
    result = subprocess.run(
        [promtool, "check", "config", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0, "promtool accepted a scrape timeout above the interval"


@pytest.mark.parametrize("arch", applied.ARCHITECTURES)
def test_argo_rollouts_loads_the_pinned_gateway_api_plugin(arch: str) -> None:
    objects = _objects(arch)
    configmap = objects[("ConfigMap", "argo-rollouts-config")]
    assert configmap["metadata"]["namespace"] == plan.ARGO_NAMESPACE
    text = configmap["data"]["trafficRouterPlugins"]
    assert traffic_router_plugins(text) == {versions.GATEWAY_API_PLUGIN_NAME}
    (entry,) = yaml.safe_load(text)
    assert entry["location"] == versions.gateway_api_plugin_url(arch)
    assert f"/{versions.GATEWAY_API_PLUGIN}/" in entry["location"]
    assert entry["location"].endswith(f"-linux-{arch}")
    role = objects[("ClusterRole", "pytest-rollout-gateway-api-plugin")]
    routes = next(r for r in role["rules"] if "httproutes" in r["resources"])
    assert {"get", "update", "patch"} <= set(routes["verbs"])
    binding = objects[("ClusterRoleBinding", "pytest-rollout-gateway-api-plugin")]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "argo-rollouts", "namespace": plan.ARGO_NAMESPACE}
    ]


def test_the_fixture_rollouts_use_the_plugin_the_install_registers() -> None:
    config = applied.target()
    rollouts = [
        rollout
        for name in config.manifest_sets
        for rollout in config.load_manifests(name).of_kind("Rollout")
        if "trafficRouting" in rollout.body["spec"]["strategy"].get("canary", {})
    ]
    assert rollouts
    for rollout in rollouts:
        plugins = rollout.body["spec"]["strategy"]["canary"]["trafficRouting"]["plugins"]
        assert set(plugins) == {versions.GATEWAY_API_PLUGIN_NAME}, rollout.origin


def test_the_namespace_database_matches_the_targets_database_url() -> None:
    env = applied.target().backend_env("kube")
    url = urlsplit(env["SERVICE_DATABASE_URL"].replace("postgresql+psycopg", "postgresql"))
    assert render.needs_postgres(env)
    deployment, service = render.postgres_objects("ns")
    container = _container(deployment)
    values = {e["name"]: e["value"] for e in container["env"]}
    assert (url.hostname, url.port) == (
        service["metadata"]["name"],
        service["spec"]["ports"][0]["port"],
    )
    assert url.username == values["POSTGRES_USER"]
    assert url.password == values["POSTGRES_PASSWORD"]
    assert url.path.lstrip("/") == values["POSTGRES_DB"]


def test_every_placeholder_is_pinned_and_every_image_comes_from_versions() -> None:
    known = set(versions.placeholders(arch="amd64"))
    used: set[str] = set()
    for path in sorted(FIXTURES.rglob("*.yaml")):
        used |= resources.placeholders_in(resources.load_objects(path))
    assert used
    assert used <= known, used - known
    pinned = {versions.TRAEFIK_IMAGE, versions.PROMETHEUS_IMAGE, versions.POSTGRES_IMAGE}
    images: set[str] = set()
    target = applied.target()
    # Images this repository builds (the canary judge) are not pulled, so not pinned.
    built = {run.image for run in target.images if run.build is not None}
    for where, obj in [*applied.install_objects(), *applied.namespace_objects(target)]:
        assert not resources.placeholders_in(obj), where
        if obj["kind"] == "Deployment" and obj["metadata"]["name"] != "reference-service":
            image = _container(obj)["image"]
            if image.partition(":")[0] not in built:
                images.add(image)
    assert images == pinned
    for image in pinned:
        assert ":" in image.rpartition("/")[2], image
        assert not image.endswith(":latest"), image


UNVERIFIED_DIGESTS = {versions.PROMETHEUS_IMAGE}
"""Images whose digest no upstream source states (versions.py says why); pinned by tag."""
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def test_images_are_pinned_by_digest_where_one_is_verified() -> None:
    images = [versions.TRAEFIK_IMAGE, versions.PROMETHEUS_IMAGE, versions.POSTGRES_IMAGE]
    for image in images:
        if image in UNVERIFIED_DIGESTS:
            assert "@" not in image, image
        else:
            assert _DIGEST.search(image), image
    assert f":{versions.TRAEFIK}@" in versions.TRAEFIK_IMAGE
    assert f":{versions.POSTGRES}-alpine@" in versions.POSTGRES_IMAGE


@pytest.mark.parametrize("arch", applied.ARCHITECTURES)
def test_a_pinned_plugin_checksum_reaches_argo_rollouts(
    arch: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    (entry,) = yaml.safe_load(versions.traffic_router_plugins(arch))
    assert "sha256" not in entry, "no checksum is verified upstream (versions.py)"
    checksum = "ab" * 32
    monkeypatch.setattr(versions, "GATEWAY_API_PLUGIN_SHA256", {arch: checksum})
    configmap = _objects(arch)[("ConfigMap", "argo-rollouts-config")]
    (entry,) = yaml.safe_load(configmap["data"]["trafficRouterPlugins"])
    assert entry == {
        "name": versions.GATEWAY_API_PLUGIN_NAME,
        "location": versions.gateway_api_plugin_url(arch),
        "sha256": checksum,
    }


def test_an_unknown_placeholder_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"unknown placeholder \$\{NOPE\}"):
        resources.render({"image": "${NOPE}"}, {"KNOWN": "x"}, "somewhere.yaml")
    assert resources.render({"r": "$1:$2"}, {}, "x") == {"r": "$1:$2"}
