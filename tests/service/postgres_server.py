"""A throwaway PostgreSQL server for the service's tests.

``initdb`` into a temporary directory, then ``postgres`` on a free loopback port (and a socket
directory of its own), with durability switched off: the data lives only as long as the test
module. PostgreSQL refuses to run as root; as root, both run as the ``postgres`` user through
``runuser``. Where there is no server to start, :class:`PostgresUnavailable` says why in one
line and the tests skip with it.

The server binaries come from PATH or, as Debian and Ubuntu install them, from
``/usr/lib/postgresql/<major>/bin`` (``scripts/install-system-deps.sh`` installs them).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from pytest_rollout._proc import ManagedProcess, free_port
from pytest_rollout._wait import wait_for

SERVER_USER = "postgres"  # the OS user that runs the server when we are root
ROLE = "orders"  # the database superuser, as in the kube backend's PostgreSQL
START_TIMEOUT_S = 30.0
_DEBIAN_BINDIRS = Path("/usr/lib/postgresql")


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server can be started here (the message says why, in one line)."""


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    log_path: Path

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{ROLE}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create database ``name``; return its SQLAlchemy URL."""
        engine = sa.create_engine(self.url("postgres"), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        finally:
            engine.dispose()
        return self.url(name)


def server_binaries() -> Path:
    """The directory holding ``initdb`` and ``postgres``: PATH first, then the newest major
    version under /usr/lib/postgresql."""
    found = shutil.which("initdb")
    if found is not None:
        return Path(found).parent
    majors = sorted(
        (path for path in _DEBIAN_BINDIRS.glob("*/bin") if (path / "initdb").exists()),
        key=lambda path: int(re.sub(r"\D", "", path.parent.name) or 0),
    )
    if not majors:
        raise PostgresUnavailable(
            "no PostgreSQL server binaries (initdb) on PATH or under /usr/lib/postgresql: "
            "install the postgresql package (scripts/install-system-deps.sh)"
        )
    return majors[-1]


def _run_as() -> list[str]:
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        raise PostgresUnavailable(
            f"running as root, and there is no {SERVER_USER!r} user to run PostgreSQL as"
        ) from None
    runuser = shutil.which("runuser")
    if runuser is None:
        raise PostgresUnavailable("running as root, and runuser is not on PATH")
    return [runuser, "-u", SERVER_USER, "--"]


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """Start a server; yield it; stop it and remove its files, also when the body raises."""
    bindir = server_binaries()
    run_as = _run_as()
    root = Path(tempfile.mkdtemp(prefix="pytest-rollout-pg-"))
    try:
        if run_as:
            shutil.chown(root, SERVER_USER, SERVER_USER)
        data = root / "data"
        init = subprocess.run(
            [
                *run_as,
                str(bindir / "initdb"),
                f"--pgdata={data}",
                f"--username={ROLE}",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
                "--no-instructions",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if init.returncode != 0:
            last = (init.stderr.strip().splitlines() or ["no output"])[-1]
            raise PostgresUnavailable(f"initdb failed with status {init.returncode}: {last}")
        port = free_port()
        server = PostgresServer("127.0.0.1", port, root / "server.log")
        process = ManagedProcess(
            f"postgres on 127.0.0.1:{port}",
            [
                *run_as,
                str(bindir / "postgres"),
                "-D",
                str(data),
                "-h",
                server.host,
                "-p",
                str(port),
                "-k",
                str(root),
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ],
            log_path=server.log_path,
            stop_signal=signal.SIGINT,  # PostgreSQL's "fast" shutdown
        )
        with process:
            _wait_accepting(server, process)
            yield server
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _wait_accepting(server: PostgresServer, process: ManagedProcess) -> None:
    engine = sa.create_engine(server.url("postgres"), connect_args={"connect_timeout": 2})

    def accepting() -> str | None:
        if not process.running():
            return "exited"
        with engine.connect() as connection:
            return "up" if connection.exec_driver_sql("SELECT 1").scalar_one() == 1 else None

    try:
        outcome = wait_for(
            accepting,
            what="PostgreSQL to accept connections",
            timeout=START_TIMEOUT_S,
            retry_on=sa.exc.OperationalError,  # refused until the server listens
        )
    finally:
        engine.dispose()
    if outcome == "exited":
        raise PostgresUnavailable(
            f"postgres exited with status {process.returncode}: "
            f"{(process.log_tail(1) or 'no output').strip()}"
        )
