"""Where experiments run: ``local`` (real processes on this machine) and ``kube``.

The registry maps a backend's name to the function that opens its cluster, by import path, so
that choosing a backend imports only that backend (the kube client is heavy; the local backend
needs HAProxy and Prometheus binaries that a kube run does not).
"""

from __future__ import annotations

import importlib
import re
import secrets
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, cast

from pytest_rollout.errors import ConfigError
from pytest_rollout.names import DNS_LABEL_MAX_LENGTH
from pytest_rollout.options import RolloutOptions

if TYPE_CHECKING:
    from pytest_rollout.backends.base import Cluster
    from pytest_rollout.config import TargetConfig

ClusterOpener = Callable[[RolloutOptions, Path, "TargetConfig"], "Cluster"]

_OPENERS: dict[str, str] = {
    "local": "pytest_rollout.backends.local.cluster:open_local_cluster",
    "kube": "pytest_rollout.backends.kube.cluster:open_kube_cluster",
}

KIND_PROMETHEUS = "http://prometheus.rollout-system.svc.cluster.local:9090"
"""The Prometheus the kube backend installs on a kind cluster."""

_SUFFIX = 6


def open_cluster(options: RolloutOptions, workdir: Path, target: TargetConfig) -> Cluster:
    """Start the cluster of the chosen backend (``options.backend``)."""
    try:
        module_name, _, function = _OPENERS[options.backend].partition(":")
    except KeyError:
        raise ConfigError(
            f"--rollout-backend={options.backend}: unknown backend (allowed: {', '.join(_OPENERS)})"
        ) from None
    opener = cast(ClusterOpener, getattr(importlib.import_module(module_name), function))
    return opener(options, workdir, target)


def server_of(url: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of a URL, the port defaulted by scheme: how a configured
    Prometheus address is matched against the URLs that templates name."""
    parts = urllib.parse.urlsplit(url)
    default = 443 if parts.scheme == "https" else 80
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default


def prometheus_rewrites(options: RolloutOptions, addresses: Sequence[str]) -> dict[str, str]:
    """Where each Prometheus address of the target's AnalysisTemplates is served on this
    backend: the local backend's own Prometheus; on kube, the installed one on a kind cluster,
    or the address itself on an existing cluster, which must have it."""
    if options.backend == "local":
        mapped = "the local backend's Prometheus"
    elif options.uses_existing_cluster:
        return dict.fromkeys(addresses, "left as written (existing cluster)")
    else:
        mapped = KIND_PROMETHEUS
    return dict.fromkeys(addresses, mapped)


def namespace_name(test_name: str) -> str:
    """A DNS-1123 label for a test's namespace: the test's name, shortened, plus a random
    suffix so that reruns and xdist workers never collide."""
    slug = re.sub(r"[^a-z0-9]+", "-", test_name.lower()).strip("-") or "test"
    slug = slug[: DNS_LABEL_MAX_LENGTH - _SUFFIX - 1].rstrip("-")
    return f"{slug}-{secrets.token_hex(_SUFFIX // 2)}"
