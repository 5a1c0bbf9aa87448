"""What the tests of local pods share: building pods on a test's tmp dir, running a scenario on
a fresh loop, and checking that nothing is left behind.

Pod specs use Kubernetes-valid integer seconds with ``time_scale=SCALE``: ``periodSeconds: 2``
is 0.2 s, the first CrashLoopBackOff (10 s) lasts 1 s.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from pytest_rollout._proc import live_processes
from pytest_rollout._wait import async_wait_for
from pytest_rollout.backends.local.addresses import default_allocator
from pytest_rollout.backends.local.events import EventRecorder
from pytest_rollout.backends.local.pod_spec import ContainerSpec, PodSpec
from pytest_rollout.backends.local.pod_status import Launch
from pytest_rollout.backends.local.pods import Pod

SCALE = 0.1
PORT = 8080
NAMESPACE = "test-ns"

H = TypeVar("H", bound="PodHarness")


class PodHarness:
    """Builds pods whose commands :meth:`resolve` maps, runs a scenario, and deletes them.

    ``state`` is a directory the test's processes write to; ``ready_changes`` records every
    readiness change as (pod, ready, monotonic time).
    """

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.state = tmp_path / "state"
        self.state.mkdir()
        self.events = EventRecorder()
        self.pods: list[Pod] = []
        self.ready_changes: list[tuple[str, bool, float]] = []

    def resolve(self, container: ContainerSpec, pod_ip: str) -> Launch:
        raise NotImplementedError

    def pod(self, manifest: dict[str, Any], name: str = "web-0") -> Pod:
        pod = Pod(
            name,
            NAMESPACE,
            PodSpec.from_manifest(manifest, time_scale=SCALE),
            resolver=self.resolve,
            events=self.events,
            log_dir=self.tmp_path / "pods",
            memory_interval=0.2,
        )
        pod.add_readiness_observer(
            lambda p, ready: self.ready_changes.append((p.name, ready, time.monotonic()))
        )
        self.pods.append(pod)
        return pod

    def run(self, scenario: Callable[[], Awaitable[None]]) -> None:
        """Run ``scenario`` on a fresh loop; every pod is deleted afterwards, pass or fail."""

        async def main() -> None:
            try:
                await scenario()
            finally:
                for pod in self.pods:
                    await pod.delete(grace_period_seconds=1)

        asyncio.run(main())

    def reasons(self, pod: Pod) -> list[str]:
        return [e.reason for e in self.events.for_object(pod.ref)]

    def messages(self, pod: Pod, reason: str) -> list[str]:
        return [e.message for e in self.events.for_object(pod.ref) if e.reason == reason]


@contextmanager
def left_clean(harness: H) -> Iterator[H]:
    """Yield ``harness``; afterwards no process of its pods runs and every pod IP is free."""
    yield harness
    leftovers = [p for p in live_processes() if p.name.startswith(f"pod {NAMESPACE}/")]
    assert not leftovers, f"processes left behind: {leftovers}"
    for pod in harness.pods:
        assert pod.deleted
        assert pod.ip not in default_allocator().in_use()


async def until(check: Callable[[], object], *, what: str, timeout: float) -> None:
    """Wait (with a deadline) until ``check()`` is truthy."""

    async def probe() -> bool | None:
        return True if check() else None

    await async_wait_for(probe, what=what, timeout=timeout, interval=0.02)


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except FileNotFoundError:
        return False
    return stat.rsplit(b")", 1)[1].split()[0] != b"Z"
