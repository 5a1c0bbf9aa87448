"""Which pods Prometheus scrapes, by their prometheus.io annotations, and the checked interval."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_rollout.backends.local.admission import check_pod_template
from pytest_rollout.backends.local.prometheus import pod_target
from pytest_rollout.backends.local.scrape import (
    ScrapeTarget,
    check_scrape_annotations,
    scrape_target,
)
from pytest_rollout.config import TargetConfig
from pytest_rollout.errors import ConfigError
from pytest_rollout.manifests import parse_manifests

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    metadata:
      annotations:
        prometheus.io/scrape: "true"
        prometheus.io/scrape-interval: {interval}
    spec:
      containers:
        - name: app
          image: pytest-rollout/reference-service:dev
"""


def test_a_pod_is_scraped_only_when_it_opts_in_and_has_a_port() -> None:
    assert scrape_target("127.0.0.5", [8080], {}) is None
    assert scrape_target("127.0.0.5", [8080], {"prometheus.io/scrape": "false"}) is None
    assert scrape_target(None, [8080], {"prometheus.io/scrape": "true"}) is None
    assert scrape_target("127.0.0.5", [], {"prometheus.io/scrape": "true"}) is None
    assert scrape_target("127.0.0.5", [8080, 9090], {"prometheus.io/scrape": "true"}) == (
        ScrapeTarget("127.0.0.5:8080", "/metrics", None)
    )
    annotated = {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "9090",
        "prometheus.io/path": "/stats",
        "prometheus.io/scrape-interval": "250ms",
    }
    assert scrape_target("127.0.0.5", [8080], annotated) == ScrapeTarget(
        "127.0.0.5:9090", "/stats", "250ms"
    )


def test_an_interval_becomes_the_targets_interval_and_timeout() -> None:
    fast = pod_target("127.0.0.5:8080", namespace="n", pod="p", scrape_interval="250ms")
    assert fast.labels["__scrape_interval__"] == fast.labels["__scrape_timeout__"] == "250ms"
    default = pod_target("127.0.0.5:8080", namespace="n", pod="p")
    assert "__scrape_interval__" not in default.labels
    assert "__scrape_timeout__" not in default.labels


@pytest.mark.parametrize("interval", ["250ms", "1s", "1m30s"])
def test_a_prometheus_duration_is_a_valid_interval(interval: str) -> None:
    (manifest,) = parse_manifests(DEPLOYMENT.format(interval=interval), Path("web.yaml"))
    check_scrape_annotations(manifest.body["spec"]["template"], where="web", manifest=manifest)


@pytest.mark.parametrize("interval", ["fast", "'250'", "0s", "1.5s", "-1s", "''"])
def test_an_unreadable_interval_is_refused_with_its_file_and_line(interval: str) -> None:
    (manifest,) = parse_manifests(DEPLOYMENT.format(interval=interval), Path("web.yaml"))
    template = manifest.body["spec"]["template"]
    with pytest.raises(ConfigError) as err:
        check_scrape_annotations(template, where="web", manifest=manifest)
    message = str(err.value)
    assert message.startswith("web.yaml:10: Deployment/web: ")
    assert "prometheus.io/scrape-interval" in message
    assert "expected a positive Prometheus duration such as '250ms'" in message
    assert "\n" not in message
    with pytest.raises(ConfigError, match=r"^pod template: metadata\.annotations\.prometheus"):
        check_scrape_annotations(template, where="pod template")


def test_admission_checks_the_interval(rollout_target: TargetConfig) -> None:
    (manifest,) = parse_manifests(DEPLOYMENT.format(interval="soon"), Path("web.yaml"))
    with pytest.raises(ConfigError, match=r"^web\.yaml:10: .*got 'soon'$"):
        check_pod_template(
            manifest.body["spec"]["template"],
            rollout_target,
            time_scale=1.0,
            where="Deployment/web",
            manifest=manifest,
        )
