"""Start the reference service as a real process for tests and benchmarks.

    with run_service({"SERVICE_VERSION": "v2", "SERVICE_ERROR_RATE": "0.1"}) as svc:
        httpx.get(svc.url + "/")

:func:`run_service` prepares the database for the release as ``python -m service migrate``
would (a fresh SQLite file per launch unless a URL is given), starts ``python -m service`` from
the repository root through :class:`~pytest_rollout._proc.ManagedProcess` on a free loopback
port, waits until it serves ``/healthz`` (or, for a variant with SERVICE_BOOT_SECONDS, until
its port accepts), and stops it on exit — also when the body raises.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from pytest_rollout._proc import ManagedProcess, free_port, port_accepts
from pytest_rollout._wait import wait_for
from pytest_rollout.errors import ProcessError, WaitTimeout
from service.config import load_config
from service.schema import prepare_release_database, upgrade

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_START_TIMEOUT_S = 30.0
DEFAULT_STOP_GRACE_S = 10.0
FOR_RELEASE = "release"
"""``migrate_to`` value: what ``python -m service migrate`` does for the release in ``env``."""


@dataclass(frozen=True)
class RunningService:
    """A started service process and how to reach it."""

    url: str
    host: str
    port: int
    process: ManagedProcess
    database_url: str
    log_path: Path
    env: Mapping[str, str]
    started_at: float
    """``time.monotonic()`` just before the process was started."""


@contextmanager
def run_service(
    env: Mapping[str, str] | None = None,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    database_url: str | None = None,
    log_path: str | Path | None = None,
    migrate_to: str | None = FOR_RELEASE,
    start_timeout: float = DEFAULT_START_TIMEOUT_S,
    stop_grace: float = DEFAULT_STOP_GRACE_S,
) -> Iterator[RunningService]:
    """Run the service with ``env`` (SERVICE_* variables) and yield it once it is up.

    ``database_url``: defaults to SERVICE_DATABASE_URL in ``env``, else a new SQLite file in a
    temporary directory removed on exit. ``migrate_to``: :data:`FOR_RELEASE` prepares the
    database for the release in ``env`` (its SERVICE_SCHEMA_REVISION and SERVICE_ORDER_SKU,
    checked); an Alembic revision upgrades to exactly that; ``None`` skips migrating.
    ``port``: a free one when None. ``log_path``: where the process's stdout/stderr go
    (default: in the temporary directory). SERVICE_* variables of the calling environment are
    not passed on; ``env`` alone decides. Raises ProcessError (with the log's tail) when the
    process exits or never comes up.
    """
    overrides = dict(env or {})
    scratch = Path(tempfile.mkdtemp(prefix="service-"))
    try:
        url = database_url or overrides.get("SERVICE_DATABASE_URL")
        if not url:
            url = f"sqlite:///{scratch / 'service.db'}"
        if migrate_to == FOR_RELEASE:
            prepare_release_database(load_config({**overrides, "SERVICE_DATABASE_URL": url}))
        elif migrate_to is not None:
            upgrade(url, migrate_to)
        chosen_port = port if port is not None else free_port(host)
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("SERVICE_")}
        child_env.update(overrides)
        child_env["SERVICE_DATABASE_URL"] = url
        child_env["PYTHONUNBUFFERED"] = "1"
        log_file = Path(log_path) if log_path is not None else scratch / "service.log"
        process = ManagedProcess(
            f"service {overrides.get('SERVICE_VERSION', 'v1')} on {host}:{chosen_port}",
            [sys.executable, "-m", "service", "--host", host, "--port", str(chosen_port)],
            env=child_env,
            cwd=REPO_ROOT,
            log_path=log_file,
        )
        started_at = time.monotonic()
        with process:
            service = RunningService(
                url=f"http://{_url_host(host)}:{chosen_port}",
                host=host,
                port=chosen_port,
                process=process,
                database_url=url,
                log_path=log_file,
                env=overrides,
                started_at=started_at,
            )
            _wait_until_up(service, booting=_boots(overrides), timeout=start_timeout)
            try:
                yield service
            finally:
                process.stop(stop_grace)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _wait_until_up(service: RunningService, *, booting: bool, timeout: float) -> None:
    what = "its port to accept" if booting else "GET /healthz to answer 200"

    def probe() -> str | None:
        if not service.process.running():
            return "exited"
        if booting:
            return "up" if port_accepts(service.host, service.port) else None
        try:
            response = httpx.get(f"{service.url}/healthz", timeout=1.0, trust_env=False)
        except httpx.HTTPError:
            return None
        return "up" if response.status_code == 200 else None

    try:
        outcome = wait_for(probe, what=f"{service.process.name}: {what}", timeout=timeout)
    except WaitTimeout as exc:
        raise ProcessError(f"{exc}; log tail:\n{service.process.log_tail()}") from exc
    if outcome == "exited":
        raise ProcessError(
            f"{service.process.name} exited with status {service.process.returncode} "
            f"before {what}; log tail:\n{service.process.log_tail()}"
        )


def _boots(env: Mapping[str, str]) -> bool:
    # A malformed value is the service's to reject (it exits with a one-line error).
    try:
        return float(env.get("SERVICE_BOOT_SECONDS") or 0) > 0
    except ValueError:
        return False


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
