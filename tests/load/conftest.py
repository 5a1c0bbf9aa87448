"""Fixtures for the load generator's tests: the real service, and servers that misbehave."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from pytest_rollout._proc import free_port
from service.launcher import RunningService, run_service
from tests.load.load_servers import misbehaving_server


@pytest.fixture(scope="module")
def service() -> Iterator[RunningService]:
    """The reference service, healthy, version ``v-load``, shared by a module's tests."""
    with run_service({"SERVICE_VERSION": "v-load"}) as running:
        yield running


@pytest.fixture
def resetting_server() -> Iterator[str]:
    """Reads each request, then resets the connection (RST)."""
    with misbehaving_server("reset") as url:
        yield url


@pytest.fixture
def garbage_server() -> Iterator[str]:
    """Answers each request with bytes that are not HTTP."""
    with misbehaving_server("garbage") as url:
        yield url


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Listens, so connections complete, but never accepts or answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(256)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


@pytest.fixture
def closed_port() -> str:
    """A loopback URL nothing listens on."""
    return f"http://127.0.0.1:{free_port()}"
