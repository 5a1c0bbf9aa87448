"""Real parts for the judge service's tests: the session's Prometheus, reference-service pods
registered with it (the fixtures of the Prometheus tests), and the judge as a process."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from pytest_rollout._proc import ManagedProcess, free_port
from pytest_rollout._wait import wait_for
from tests.prom.conftest import namespace, start_pod

__all__ = ["namespace", "start_judge", "start_pod"]

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 30.0

StartJudge = Callable[..., str]


@pytest.fixture
def start_judge(tmp_path: Path) -> Iterator[StartJudge]:
    """Start ``python -m pytest_rollout.judge`` against a Prometheus; return its base URL."""
    with ExitStack() as stack:

        def start(prometheus_url: str, *options: str) -> str:
            port = free_port()
            process = ManagedProcess(
                f"canary judge on 127.0.0.1:{port}",
                [
                    sys.executable,
                    "-m",
                    "pytest_rollout.judge",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--prometheus",
                    prometheus_url,
                    *options,
                ],
                cwd=REPO,
                log_path=tmp_path / f"judge-{port}.log",
            )
            stack.enter_context(process)
            url = f"http://127.0.0.1:{port}"

            def healthy() -> bool:
                if not process.running():
                    raise AssertionError(f"judge exited: {process.log_tail()}")
                try:
                    return httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200
                except httpx.HTTPError:
                    return False

            wait_for(healthy, what=f"GET {url}/healthz to answer 200", timeout=START_TIMEOUT_S)
            return url

        yield start
