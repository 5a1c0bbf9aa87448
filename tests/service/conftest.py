"""Fixtures for the reference service's tests: real processes, reached over loopback HTTP."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.launcher import RunningService, run_service
from tests.service.postgres_server import PostgresServer, PostgresUnavailable, postgres_server
from tests.service.service_probes import client

_DATABASES = itertools.count(1)


@pytest.fixture(scope="module")
def default_service() -> Iterator[RunningService]:
    """The service with no variant knobs set, shared by the tests of one module."""
    with run_service({"SERVICE_VERSION": "v-default"}) as service:
        yield service


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with client() as session:
        yield session


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the session; the tests using it skip where none starts."""
    try:
        with postgres_server() as server:
            yield server
    except PostgresUnavailable as exc:
        pytest.skip(f"no PostgreSQL server: {exc}")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each kind the service supports: an SQLite file, and a new
    database on the session's PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'orders.db'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.create_database(f"orders_{next(_DATABASES)}")
