"""Every version the kube backend installs or runs, pinned here and nowhere else.

The install files under ``backends/kube/data/`` carry ``${NAME}`` placeholders where a version
goes; :func:`placeholders` supplies their values. The GitHub workflow's kind matrix repeats the
node images and kind version (a unit test keeps the two equal). Next to each value: the upstream
source it was read from. A digest or checksum that could not be read from an upstream source is
left out, and the comment says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import yaml

from pytest_rollout.backends.kube import timing

KIND = "v0.33.0"
"""The kind release the node images below were published for."""

_KINDEST_NODE = "kindest/node"
KIND_NODE_IMAGES: Mapping[str, str] = MappingProxyType(
    {
        # The images kind v0.33.0 published, by digest: a tag alone may be rebuilt.
        "1.35": f"{_KINDEST_NODE}:v1.35.8@sha256:"
        "07b2536e30b803ed61d1677a79df6115f798ce64c80f9e22f6ed45afd09323c0",
        "1.36": f"{_KINDEST_NODE}:v1.36.4@sha256:"
        "099e049362a1526b2db71494e1947aae99bd16290d7c895f2b7ea312e3cbfaed",
        "1.37": f"{_KINDEST_NODE}:v1.37.0@sha256:"
        "a1ed56cfb0e7b93589bdf97c8cd566405a265939e3620fc4f5de89adff580ae5",
    }
)
DEFAULT_KUBERNETES = "1.37"
KUBERNETES_ENV = "PYTEST_ROLLOUT_KUBERNETES"
"""Environment variable choosing the Kubernetes minor of a cluster the plugin creates."""

GATEWAY_API = "v1.4.0"
GATEWAY_API_CRDS_URL = (
    f"https://github.com/kubernetes-sigs/gateway-api/releases/download/{GATEWAY_API}/"
    "standard-install.yaml"
)
TRAEFIK = "v3.6.25"
"""Traefik 3.6 implements Gateway API v1.4.0 (standard channel), path rewrites included.
v3.6.25 (2026-07-31) is the newest 3.6 release: traefik/traefik CHANGELOG.md lists v3.6.26 as
"Release canceled" and no later 3.6 entry."""
TRAEFIK_IMAGE = (
    # The multi-platform index of traefik:3.6.25 (= v3.6.25), as recorded by
    # docker-library/repo-info, repos/traefik/remote/3.6.25.md at commit 25a9fbf8.
    f"docker.io/library/traefik:{TRAEFIK}@sha256:"
    "fbc395356327765e9725ae4a6b9c140ba6070cc0fa83c36ab4f1342adcea7141"
)

ARGO_ROLLOUTS = "v1.9.1"
ARGO_ROLLOUTS_INSTALL_URL = (
    f"https://github.com/argoproj/argo-rollouts/releases/download/{ARGO_ROLLOUTS}/install.yaml"
)
GATEWAY_API_PLUGIN = "v0.15.0"
GATEWAY_API_PLUGIN_NAME = "argoproj-labs/gatewayAPI"
GATEWAY_API_PLUGIN_SHA256: Mapping[str, str | None] = MappingProxyType(
    {
        # Unverified, so not pinned: the plugin's release workflow
        # (argoproj-labs/rollouts-plugin-trafficrouter-gatewayapi,
        # .github/workflows/release.yaml) uploads the binaries without a checksum file, and no
        # upstream source states one. Argo Rollouts v1.9.1 checks a `sha256` given here
        # (utils/plugin/types/types.go, PluginItem.Sha256); fill these in from a verified source.
        "amd64": None,
        "arm64": None,
    }
)
_GATEWAY_API_PLUGIN_URL = (
    "https://github.com/argoproj-labs/rollouts-plugin-trafficrouter-gatewayapi/releases/"
    "download/{version}/gatewayapi-plugin-linux-{arch}"
)
PLUGIN_ARCHITECTURES = ("amd64", "arm64")

PROMETHEUS = "v2.55.1"
# Pinned by tag only: its digest is unverified. Prometheus's repository and release pages
# publish no image digests, and quay.io is not mirrored by docker-library/repo-info.
PROMETHEUS_IMAGE = f"quay.io/prometheus/prometheus:{PROMETHEUS}"
POSTGRES = "16.15"
"""The newest PostgreSQL 16 in docker-library/repo-info (16-alpine and 16.15-alpine are the same
index there)."""
POSTGRES_IMAGE = (
    # docker-library/repo-info, repos/postgres/remote/16.15-alpine.md at commit 14ad5cc1.
    f"docker.io/library/postgres:{POSTGRES}-alpine@sha256:"
    "721873c34ceb9f8d8fc265984940dc982404c105f19ad51be9fdc5970a6080ea"
)


def gateway_api_plugin_url(arch: str) -> str:
    """Where the Argo Rollouts controller downloads the plugin for nodes of ``arch``."""
    if arch not in PLUGIN_ARCHITECTURES:
        raise ValueError(
            f"the Gateway API plugin is published for {', '.join(PLUGIN_ARCHITECTURES)}, "
            f"not {arch!r}"
        )
    return _GATEWAY_API_PLUGIN_URL.format(version=GATEWAY_API_PLUGIN, arch=arch)


def traffic_router_plugins(arch: str) -> str:
    """``argo-rollouts-config``'s ``trafficRouterPlugins``: the Gateway API plugin for nodes of
    ``arch``, with its checksum where one is pinned (the controller then verifies the download)."""
    entry = {"name": GATEWAY_API_PLUGIN_NAME, "location": gateway_api_plugin_url(arch)}
    checksum = GATEWAY_API_PLUGIN_SHA256.get(arch)
    if checksum is not None:
        entry["sha256"] = checksum
    return yaml.safe_dump([entry], sort_keys=False).rstrip("\n")


def node_image_version(image: str) -> str:
    """``kindest/node:v1.36.4@sha256:...`` -> ``v1.36.4`` (also the matching kubectl)."""
    return image.partition("@")[0].rpartition(":")[2]


def placeholders(*, arch: str) -> dict[str, str]:
    """The values of the ``${NAME}`` placeholders in the install files, for nodes of ``arch``."""
    return {
        "TRAEFIK_IMAGE": TRAEFIK_IMAGE,
        "TRAEFIK_PROVIDERS_THROTTLE": timing.go_duration(timing.TRAEFIK_PROVIDERS_THROTTLE),
        "PROMETHEUS_IMAGE": PROMETHEUS_IMAGE,
        "POSTGRES_IMAGE": POSTGRES_IMAGE,
        "TRAFFIC_ROUTER_PLUGINS": traffic_router_plugins(arch),
    }
