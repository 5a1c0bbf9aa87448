"""Fixtures for the reference service's tests: real processes, reached over loopback HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from service.launcher import RunningService, run_service
from tests.service.service_probes import client


@pytest.fixture(scope="module")
def default_service() -> Iterator[RunningService]:
    """The service with no variant knobs set, shared by the tests of one module."""
    with run_service({"SERVICE_VERSION": "v-default"}) as service:
        yield service


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with client() as session:
        yield session
