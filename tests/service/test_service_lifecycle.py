"""Shutdown, startup errors, migrations and shared SQLite: the service as a process."""

from __future__ import annotations

import asyncio
import signal
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from pytest_rollout._proc import ManagedProcess, free_port, port_accepts
from pytest_rollout._wait import wait_for
from service.launcher import REPO_ROOT, run_service
from tests.service.service_probes import (
    client,
    migrate_process,
    order_rows,
    run_migrate,
    run_together,
    scrape,
)

pytestmark = pytest.mark.slow  # starts real processes, or renders for seconds


def test_sigterm_finishes_the_request_in_flight_and_refuses_new_connections() -> None:
    with run_service({"SERVICE_LATENCY_MS": "1500"}) as service, ThreadPoolExecutor(1) as pool:

        def slow_get() -> httpx.Response:
            with client() as http:
                return http.get(f"{service.url}/")

        in_flight = pool.submit(slow_get)
        wait_for(
            lambda: scrape(service).value("http_requests_in_flight", route="/") == 1,
            what="GET / to be in flight",
            timeout=5,
        )
        service.process.signal(signal.SIGTERM)
        wait_for(
            lambda: not port_accepts(service.host, service.port),
            what="the listener to close after SIGTERM",
            timeout=5,
        )
        assert not in_flight.done(), "the slow request ended before the listener closed"
        response = in_flight.result(timeout=10)
        assert (response.status_code, response.json()) == (200, {"version": "v1"})
        assert service.process.wait(10) == 0
        assert "draining in-flight requests" in service.log_path.read_text()


def test_readyz_turns_503_during_the_shutdown_delay_while_requests_are_still_served() -> None:
    with run_service({"SERVICE_SHUTDOWN_DELAY_SECONDS": "3"}) as service, client() as http:
        assert http.get(f"{service.url}/readyz").status_code == 200
        service.process.signal(signal.SIGTERM)

        def unready() -> httpx.Response | None:
            response = http.get(f"{service.url}/readyz")
            return response if response.status_code == 503 else None

        ready = wait_for(unready, what="/readyz to answer 503 after SIGTERM", timeout=3)
        assert ready.json()["reason"] == "shutting down"
        assert http.get(f"{service.url}/healthz").status_code == 200
        assert http.get(f"{service.url}/").status_code == 200
        assert service.process.wait(10) == 0


def test_two_processes_share_one_sqlite_file_under_concurrent_checkouts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    per_service = 100

    async def checkouts(base: str) -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=25)
        async with httpx.AsyncClient(timeout=30, trust_env=False, limits=limits) as http:
            return await asyncio.gather(
                *(http.post(f"{base}/checkout") for _ in range(per_service))
            )

    async def both(first: str, second: str) -> tuple[list[httpx.Response], ...]:
        return await asyncio.gather(checkouts(first), checkouts(second))

    with (
        run_service({"SERVICE_VERSION": "va"}, database_url=url) as a,
        run_service({"SERVICE_VERSION": "vb"}, database_url=url) as b,
    ):
        results = asyncio.run(both(a.url, b.url))
        statuses = [r.status_code for batch in results for r in batch]
        ids = [r.json()["order_id"] for batch in results for r in batch]
        with client() as http:
            cross_read = http.get(f"{b.url}/orders/{results[0][0].json()['order_id']}")

    assert statuses.count(200) == 2 * per_service, f"statuses seen: {sorted(set(statuses))}"
    assert len(set(ids)) == 2 * per_service
    rows = order_rows(url)
    assert sorted(order_id for order_id, _ in rows) == sorted(ids)
    assert [v for _, v in rows].count("va") == [v for _, v in rows].count("vb") == per_service
    assert cross_read.status_code == 200
    assert cross_read.json()["created_by_version"] == "va"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "SERVICE_ERROR_RATE",
            "abc",
            "SERVICE_ERROR_RATE: expected a number between 0 and 1, got 'abc'",
        ),
        ("SERVICE_ERROR_RATE", "1.5", "SERVICE_ERROR_RATE: expected a number between 0 and 1"),
        ("SERVICE_BOOT_SECONDS", "-1", "SERVICE_BOOT_SECONDS: expected a number >= 0, got '-1'"),
        ("SERVICE_LATENCY_MS", "fast", "SERVICE_LATENCY_MS: expected a number >= 0, got 'fast'"),
        ("SERVICE_CHECKOUT_BROKEN", "maybe", "SERVICE_CHECKOUT_BROKEN: expected 1/true/yes/on"),
        ("SERVICE_DATABASE_URL", "mysql://db/x", "SERVICE_DATABASE_URL: expected a sqlite://"),
        ("SERVICE_SCHEMA_REVISION", "0099_future", "SERVICE_SCHEMA_REVISION: expected one of"),
    ],
)
def test_bad_setting_exits_2_with_one_line_naming_it(
    tmp_path: Path, name: str, value: str, message: str
) -> None:
    log = tmp_path / "service.log"
    process = ManagedProcess(
        f"service with {name}={value}",
        [sys.executable, "-m", "service", "--port", str(free_port())],
        env={"PATH": "/usr/bin:/bin", name: value},
        cwd=REPO_ROOT,
        log_path=log,
    )
    with process:
        returncode = process.wait(15)
    lines = log.read_text().splitlines()
    assert returncode == 2, f"exit status {returncode}, output: {lines}"
    assert len(lines) == 1, f"expected one line, got {lines}"
    assert lines[0].startswith(f"service: {message}"), lines[0]


def test_migrate_command_creates_the_schema_and_is_idempotent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    for _ in range(2):
        returncode, output = run_migrate(tmp_path, url)
        assert returncode == 0, output
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            tables = set(sa.inspect(connection).get_table_names())
            revisions = connection.execute(sa.text("SELECT version_num FROM alembic_version"))
            applied = revisions.scalars().all()
            journal = connection.execute(sa.text("PRAGMA journal_mode")).scalar_one()
    finally:
        engine.dispose()
    assert tables == {"orders", "alembic_version"}
    assert applied == ["0001_create_orders"]
    assert journal == "wal"


def test_concurrent_migrations_of_one_sqlite_file_take_turns(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'raced.db'}"
    logs = [tmp_path / f"migrate-{i}.log" for i in range(3)]
    codes = run_together([migrate_process(url, log) for log in logs], timeout=30)
    assert codes == [0, 0, 0], [log.read_text() for log in logs]
    assert order_rows(url) == []


def test_migrate_command_reports_a_failure_in_one_line(tmp_path: Path) -> None:
    returncode, output = run_migrate(
        tmp_path, f"sqlite:///{tmp_path / 'x.db'}", "--revision", "0099_future"
    )
    assert returncode == 1
    assert output[-1].startswith("service: migration of sqlite:///"), output
    assert "0099_future" in output[-1]

    unreachable = f"postgresql+psycopg://orders:secret@127.0.0.1:{free_port()}/orders"
    returncode, output = run_migrate(tmp_path, unreachable)
    assert returncode == 1
    assert len(output) == 1, output
    assert "OperationalError" in output[0]
    assert "secret" not in output[0]
