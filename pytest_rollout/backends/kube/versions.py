"""Every version the kube backend installs or runs, pinned here and nowhere else.

The committed YAML under ``fixtures/kube/`` carries ``${NAME}`` placeholders where a version
goes; :func:`placeholders` supplies their values. The GitHub workflow's kind matrix repeats the
node images and kind version (a unit test keeps the two equal).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

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
TRAEFIK = "v3.6.8"
"""Traefik 3.6 implements Gateway API v1.4.0 (standard channel), path rewrites included."""
TRAEFIK_IMAGE = f"docker.io/library/traefik:{TRAEFIK}"

ARGO_ROLLOUTS = "v1.9.1"
ARGO_ROLLOUTS_INSTALL_URL = (
    f"https://github.com/argoproj/argo-rollouts/releases/download/{ARGO_ROLLOUTS}/install.yaml"
)
GATEWAY_API_PLUGIN = "v0.15.0"
GATEWAY_API_PLUGIN_NAME = "argoproj-labs/gatewayAPI"
_GATEWAY_API_PLUGIN_URL = (
    "https://github.com/argoproj-labs/rollouts-plugin-trafficrouter-gatewayapi/releases/"
    "download/{version}/gatewayapi-plugin-linux-{arch}"
)
PLUGIN_ARCHITECTURES = ("amd64", "arm64")

PROMETHEUS = "v2.55.1"
PROMETHEUS_IMAGE = f"quay.io/prometheus/prometheus:{PROMETHEUS}"
POSTGRES = "16.4"
POSTGRES_IMAGE = f"docker.io/library/postgres:{POSTGRES}-alpine"


def gateway_api_plugin_url(arch: str) -> str:
    """Where the Argo Rollouts controller downloads the plugin for nodes of ``arch``."""
    if arch not in PLUGIN_ARCHITECTURES:
        raise ValueError(
            f"the Gateway API plugin is published for {', '.join(PLUGIN_ARCHITECTURES)}, "
            f"not {arch!r}"
        )
    return _GATEWAY_API_PLUGIN_URL.format(version=GATEWAY_API_PLUGIN, arch=arch)


def node_image_version(image: str) -> str:
    """``kindest/node:v1.36.4@sha256:...`` -> ``v1.36.4`` (also the matching kubectl)."""
    return image.partition("@")[0].rpartition(":")[2]


def placeholders(*, arch: str) -> dict[str, str]:
    """The values of the ``${NAME}`` placeholders in ``fixtures/kube``."""
    return {
        "TRAEFIK_IMAGE": TRAEFIK_IMAGE,
        "PROMETHEUS_IMAGE": PROMETHEUS_IMAGE,
        "POSTGRES_IMAGE": POSTGRES_IMAGE,
        "GATEWAY_API_PLUGIN_NAME": GATEWAY_API_PLUGIN_NAME,
        "GATEWAY_API_PLUGIN_URL": gateway_api_plugin_url(arch),
    }
