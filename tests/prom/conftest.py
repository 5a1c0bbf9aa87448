"""Reference-service processes registered as pods with the session's Prometheus."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import ExitStack

import pytest

from pytest_rollout.backends.local.prometheus import PrometheusServer, pod_target
from service.launcher import run_service
from tests.prom.prom_pods import Pod, StartPod, next_pod_host


@pytest.fixture
def namespace() -> str:
    """A namespace label of this test's own, so session-wide series never mix."""
    return f"prom-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def start_pod(prometheus_server: PrometheusServer, namespace: str) -> Iterator[StartPod]:
    """Start the reference service as a pod and register it for scraping.

    Targets registered before the test are kept, and restored when it ends.
    """
    before = prometheus_server.targets
    pods: list[Pod] = []
    with ExitStack() as stack:

        def start(version: str = "v1", env: Mapping[str, str] | None = None) -> Pod:
            name = f"svc-{version}-{len(pods)}"
            service = stack.enter_context(
                run_service({"SERVICE_VERSION": version, **(env or {})}, host=next_pod_host())
            )
            target = pod_target(
                f"{service.host}:{service.port}",
                namespace=namespace,
                pod=name,
                pod_labels={
                    "app": "svc",
                    "role": "canary" if version != "v1" else "stable",
                    "rollouts-pod-template-hash": f"hash-{version}",
                },
            )
            pod = Pod(name, service, target)
            pods.append(pod)
            prometheus_server.set_targets([*before, *(p.target for p in pods)])
            return pod

        try:
            yield start
        finally:
            prometheus_server.set_targets(before)
