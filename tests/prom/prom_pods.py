"""Reference-service processes that stand in for pods in the Prometheus tests."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from pytest_rollout.backends.local.prometheus import TargetGroup
from service.launcher import RunningService

_HOSTS = itertools.count()


def next_pod_host() -> str:
    """A fresh 127.x.y.z address, the way each pod gets its own IP."""
    n = next(_HOSTS)
    return f"127.0.{n // 250 % 250 + 10}.{n % 250 + 1}"


@dataclass(frozen=True)
class Pod:
    name: str
    service: RunningService
    target: TargetGroup

    @property
    def address(self) -> str:
        return f"{self.service.host}:{self.service.port}"

    def get(self, count: int, path: str = "/") -> list[int]:
        """Send ``count`` sequential requests; the status codes in order."""
        with httpx.Client(base_url=self.service.url, trust_env=False, timeout=5.0) as client:
            return [client.get(path).status_code for _ in range(count)]


StartPod = Callable[..., Pod]
