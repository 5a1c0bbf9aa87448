"""Services, HTTPRoutes and endpoint propagation of the local backend (no processes)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from pytest_rollout._wait import async_wait_for
from pytest_rollout.backends.local.networking import EndpointPublisher, HTTPRoute, Service
from pytest_rollout.errors import ConfigError
from pytest_rollout.manifests import parse_manifests


class RecordingRouter:
    """Stands in for HAProxy: records what reached it and when."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, str, dict[str, str]]] = []

    def set_endpoints(self, pool: str, endpoints: Mapping[str, str]) -> None:
        self.calls.append((time.monotonic(), pool, dict(endpoints)))


def _one(text: str) -> Any:
    (manifest,) = list(parse_manifests(text, Path("test.yaml")))
    return manifest


SERVICE = """
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
"""


def test_service_selects_by_labels_and_names_its_pool() -> None:
    service = Service.from_manifest(_one(SERVICE), "ns1")
    assert service.pool == "ns1/web"
    assert service.selects({"app": "web", "pod-template-hash": "abc"})
    assert not service.selects({"app": "other"})


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("{selector: {app: web}, ports: [{port: 80}], type: NodePort}", "only ClusterIP"),
        ("{selector: {app: web}, ports: [{port: 80}], externalName: x}", "unsupported"),
        ("{ports: [{port: 80}]}", "spec.selector: must be a non-empty mapping"),
        ("{selector: {app: web}, ports: [{port: 80, targetPort: 1.5}]}", "port number or name"),
    ],
)
def test_bad_services_are_one_line_errors(spec: str, message: str) -> None:
    text = f"apiVersion: v1\nkind: Service\nmetadata: {{name: web}}\nspec: {spec}\n"
    with pytest.raises(ConfigError, match=message) as info:
        Service.from_manifest(_one(text), "ns1")
    assert str(info.value).startswith("test.yaml:")
    assert "\n" not in str(info.value)


def test_route_backends_and_weights() -> None:
    route = HTTPRoute.from_manifest(
        _one(
            """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web}
spec:
  parentRefs: [{name: gw}]
  rules:
    - matches: [{path: {type: PathPrefix, value: /}}]
      backendRefs: [{name: stable, port: 80, weight: 95}, {name: canary, port: 80, weight: 5}]
"""
        ),
        "ns1",
    )
    assert route.route == "ns1/web"
    assert [(b.service, b.weight) for b in route.backends] == [("stable", 95), ("canary", 5)]


def test_route_with_path_matching_is_rejected_by_name() -> None:
    text = """
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web}
spec:
  rules:
    - matches: [{path: {type: Exact, value: /api}}]
      backendRefs: [{name: stable}]
"""
    with pytest.raises(ConfigError, match=r"spec\.rules\[0\]\.matches\[0\].*PathPrefix '/'"):
        HTTPRoute.from_manifest(_one(text), "ns1")


def test_endpoint_changes_reach_the_router_after_the_delay_in_order() -> None:
    router = RecordingRouter()

    async def scenario() -> tuple[float, EndpointPublisher]:
        publisher = EndpointPublisher(router, asyncio.get_running_loop(), delay=0.3)  # type: ignore[arg-type]
        start = time.monotonic()
        publisher.publish_endpoints("ns/web", {"a": "127.1.0.1:80"})
        publisher.publish_endpoints("ns/web", {"a": "127.1.0.1:80", "b": "127.1.0.2:80"})
        publisher.publish_endpoints("ns/web", {"b": "127.1.0.2:80"})

        async def delivered() -> bool:
            return len(router.calls) == 3

        await async_wait_for(delivered, what="three endpoint updates", timeout=5)
        return start, publisher

    start, publisher = asyncio.run(scenario())
    publisher.close()
    assert [endpoints for _, _, endpoints in router.calls] == [
        {"a": "127.1.0.1:80"},
        {"a": "127.1.0.1:80", "b": "127.1.0.2:80"},
        {"b": "127.1.0.2:80"},
    ]
    first_delivery = router.calls[0][0] - start
    assert 0.3 <= first_delivery < 1.0, f"delivered after {first_delivery:.3f}s, delay is 0.3s"


def test_flush_delivers_pending_changes_at_once() -> None:
    router = RecordingRouter()

    async def scenario() -> None:
        publisher = EndpointPublisher(router, asyncio.get_running_loop(), delay=60)  # type: ignore[arg-type]
        publisher.publish_endpoints("ns/web", {})
        publisher.flush()
        publisher.close()

    asyncio.run(scenario())
    assert [(pool, endpoints) for _, pool, endpoints in router.calls] == [("ns/web", {})]
