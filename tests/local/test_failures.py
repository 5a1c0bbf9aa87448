"""A failure of the local backend's own machinery -- a probe loop, a readiness observer, a
controller's reconcile -- fails the next wait at once, with its traceback, instead of turning
into a timeout."""

from __future__ import annotations

import asyncio
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from pytest_rollout.backends.base import Namespace
from pytest_rollout.backends.local import pods
from pytest_rollout.backends.local.failures import FailureLatch
from pytest_rollout.backends.local.pod_spec import ContainerSpec
from pytest_rollout.backends.local.pod_status import Launch
from pytest_rollout.backends.local.pods import Pod
from pytest_rollout.config import TargetConfig
from pytest_rollout.engine import deployment
from pytest_rollout.errors import BackendError
from tests.local.pod_harness import PORT, PodHarness, left_clean

pytestmark = pytest.mark.slow  # starts real processes, or renders for seconds

SERVER = (
    "import http.server, os\n"
    "http.server.ThreadingHTTPServer((os.environ['POD_IP'], int(os.environ['PORT'])),"
    " http.server.SimpleHTTPRequestHandler).serve_forever()\n"
)
WAIT = 30.0
AT_ONCE = 5.0  # far below the wait's own deadline, with room for a busy machine


class Harness(PodHarness):
    def resolve(self, container: ContainerSpec, pod_ip: str) -> Launch:
        return Launch(argv=(sys.executable, "-c", SERVER), cwd=self.tmp_path)

    def manifest(self, **container: Any) -> dict[str, Any]:
        return {
            "containers": [
                {
                    "name": "app",
                    "image": "server:1",
                    "ports": [{"name": "http", "containerPort": PORT}],
                    "env": [{"name": "PORT", "value": str(PORT)}],
                    **container,
                }
            ]
        }


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    with left_clean(Harness(tmp_path)) as harness:
        yield harness


def broken_observer(pod: Pod, ready: bool) -> NoReturn:
    raise TypeError("the observer takes no such pod")


def assert_fails_at_once_with(
    caught: pytest.ExceptionInfo[BackendError], began: float, culprit: str
) -> None:
    took = time.monotonic() - began
    assert took < AT_ONCE, f"failed after {took:.1f}s, as a timeout would"
    cause = caught.value.__cause__
    assert isinstance(cause, TypeError), caught.value
    assert f"TypeError: {cause}" in str(caught.value)
    assert culprit in "".join(traceback.format_exception(cause)), "the traceback is kept"


async def start_and_fail_wait_ready(pod: Pod, *, match: str, culprit: str) -> None:
    """Start ``pod``; its wait_ready raises a BackendError matching ``match`` at once, with
    ``culprit`` in the cause's traceback."""
    await pod.start()
    began = time.monotonic()
    with pytest.raises(BackendError, match=match) as caught:
        await pod.wait_ready(timeout=WAIT)
    assert_fails_at_once_with(caught, began, culprit)


def test_a_broken_readiness_observer_fails_wait_ready_at_once(harness: Harness) -> None:
    pod = harness.pod(harness.manifest())
    pod.add_readiness_observer(broken_observer)

    async def scenario() -> None:
        await start_and_fail_wait_ready(
            pod, match="a readiness observer of pod test-ns/web-0", culprit="broken_observer"
        )
        assert pod.ready, "the pod itself is Ready: only its observer failed"

    harness.run(scenario)


def test_a_broken_probe_fails_wait_ready_at_once(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken_probe(*args: object) -> NoReturn:
        raise TypeError("the probe cannot run this action")

    monkeypatch.setattr(pods, "execute", broken_probe)
    probe = {"tcpSocket": {"port": "http"}, "periodSeconds": 1}
    pod = harness.pod(harness.manifest(readinessProbe=probe))
    harness.run(
        lambda: start_and_fail_wait_ready(
            pod, match="the readiness probe loop of pod", culprit="broken_probe"
        )
    )


def test_a_latch_ends_the_waits_it_guards_and_tells_its_parent() -> None:
    async def scenario() -> None:
        namespace = FailureLatch()
        pod = FailureLatch(parent=namespace)
        never = asyncio.Event()
        waiting = asyncio.create_task(pod.guard(never.wait()))
        await asyncio.sleep(0)  # the guard is waiting
        pod.record(TypeError("boom"), "a probe loop")
        with pytest.raises(BackendError, match=r"^a probe loop failed: TypeError: boom$"):
            await waiting
        with pytest.raises(BackendError, match="a probe loop failed"):
            await namespace.guard(never.wait())  # already failed: at once
        pod.record(ValueError("later"), "another loop")
        assert isinstance(namespace.error, TypeError), "the first failure is the one kept"

    asyncio.run(scenario())


@pytest.mark.timeout(120)
def test_a_failed_reconcile_fails_the_namespace_wait_at_once(
    rollout_namespace: Namespace,
    rollout_target: TargetConfig,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken_rolling_update(*args: object) -> NoReturn:
        raise TypeError("the rolling update takes no such arguments")

    monkeypatch.setattr(deployment, "next_step", broken_rolling_update)
    manifests = rollout_target.load_manifests("readiness-with-probe")
    (workload,) = manifests.of_kind("Deployment")
    rollout_namespace.apply(manifests)
    began = time.monotonic()
    with pytest.raises(BackendError, match=f"the reconcile of Deployment/{workload.name}") as err:
        rollout_namespace.wait_rolled_out(workload.name, timeout=WAIT)
    assert_fails_at_once_with(err, began, "broken_rolling_update")
