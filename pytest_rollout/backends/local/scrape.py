"""Which pods Prometheus scrapes, where and how often: the usual ``prometheus.io`` annotations.

``prometheus.io/scrape: "true"`` opts a pod in; ``prometheus.io/port`` (default: the first
container port) and ``prometheus.io/path`` (default ``/metrics``) say where.
``prometheus.io/scrape-interval`` (a Prometheus duration such as ``250ms``) overrides the
server's 1 s interval for that pod: the kube backend's Prometheus relabels the same annotation
into ``__scrape_interval__``, so a manifest that asks for a faster scrape gets it on both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pytest_rollout.errors import ConfigError
from pytest_rollout.manifests import Manifest
from pytest_rollout.prom import duration_seconds

SCRAPE_ANNOTATION = "prometheus.io/scrape"
PORT_ANNOTATION = "prometheus.io/port"
PATH_ANNOTATION = "prometheus.io/path"
INTERVAL_ANNOTATION = "prometheus.io/scrape-interval"
_ANNOTATIONS_PATH = ("spec", "template", "metadata", "annotations")


@dataclass(frozen=True)
class ScrapeTarget:
    """Where and how often Prometheus scrapes one pod."""

    address: str
    """``ip:port``."""
    path: str = "/metrics"
    interval: str | None = None
    """A Prometheus duration; None: the server's own interval."""


def scrape_target(
    ip: str | None, ports: Sequence[int], annotations: Mapping[str, str]
) -> ScrapeTarget | None:
    """The pod's scrape target by its annotations (None: not scraped, or no port to scrape)."""
    if annotations.get(SCRAPE_ANNOTATION) != "true" or ip is None:
        return None
    port = annotations.get(PORT_ANNOTATION) or (str(ports[0]) if ports else None)
    if port is None:
        return None
    return ScrapeTarget(
        f"{ip}:{port}",
        annotations.get(PATH_ANNOTATION, "/metrics"),
        annotations.get(INTERVAL_ANNOTATION),
    )


def pod_annotations(template: Mapping[str, Any]) -> Mapping[str, Any]:
    """A pod template's ``metadata.annotations`` (empty when it has none)."""
    return (template.get("metadata") or {}).get("annotations") or {}


def check_scrape_annotations(
    template: Mapping[str, Any], *, where: str, manifest: Manifest | None = None
) -> None:
    """A pod template's scrape interval annotation, if any, is a positive Prometheus duration:
    Prometheus drops a target whose interval it cannot read, with nothing but a log line."""
    annotations = pod_annotations(template)
    if INTERVAL_ANNOTATION not in annotations:
        return
    value = annotations[INTERVAL_ANNOTATION]
    try:
        seconds = duration_seconds(value) if isinstance(value, str) else 0.0
    except ConfigError:
        seconds = 0.0
    if seconds > 0:
        return
    message = f"expected a positive Prometheus duration such as '250ms' or '1s', got {value!r}"
    if manifest is not None:
        raise manifest.error((*_ANNOTATIONS_PATH, INTERVAL_ANNOTATION), message)
    raise ConfigError(f"{where}: metadata.annotations.{INTERVAL_ANNOTATION}: {message}")
