"""One migration at a time per database, across processes and pods.

Every pod of a release may run ``python -m service migrate`` at the same moment (an init
container per pod). Without a lock, two of them read the same old revision and both apply the
next one: the second fails (duplicate column, duplicate version row) and its pod restarts.

- PostgreSQL: a session-level advisory lock (``pg_advisory_lock``) on the migration's own
  connection. It is held across the commits of a migration that runs in several transactions
  (a batched backfill commits between batches), and the server releases it if the process dies.
  Advisory locks are per database, so databases on one server do not wait for each other.
- SQLite: an exclusive ``flock`` on a file beside the database (``<file>.migrate-lock``).
  ``BEGIN IMMEDIATE`` alone serialises single transactions, not a migration that commits in
  the middle. The kernel drops the lock when the process exits.

Waiting is bounded (:data:`LOCK_WAIT_S`): a migration stuck elsewhere fails this one loudly
rather than hanging an init container forever.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

log = logging.getLogger("service")

LOCK_WAIT_S = 300.0
"""Longest wait for another process's migration (a backfill of a large table takes a while)."""

POSTGRES_DDL_LOCK_TIMEOUT = "10s"
"""Once we hold the migration lock, how long a DDL statement may queue for a table lock. A DDL
statement waiting behind a long transaction blocks every query queued after it, so it fails
instead (the migration rolls back, the init container retries)."""

# Any fixed 64-bit number works; this one is "orders" in ASCII, recognisable in pg_locks.
ADVISORY_LOCK_KEY = 0x6F72646572730000

_POLL_S = 0.05


class MigrationLockTimeout(RuntimeError):
    """Another process held the migration lock longer than we were willing to wait."""


@contextlib.contextmanager
def migration_lock(connection: Connection, *, wait_s: float = LOCK_WAIT_S) -> Iterator[None]:
    """Hold the database's migration lock for the body; ``connection`` is the migration's own.

    Leaves ``connection`` outside any transaction on entry, so that Alembic manages its own.
    """
    dialect = connection.dialect.name
    if dialect == "postgresql":
        with _advisory_lock(connection, wait_s):
            yield
    elif dialect == "sqlite":
        database = connection.engine.url.database
        if not database or database == ":memory:" or database.startswith("file:"):
            yield  # one connection, no other process can reach it
            return
        with _file_lock(Path(f"{database}.migrate-lock"), wait_s):
            yield
    else:
        raise ValueError(f"no migration lock for {dialect!r} databases")


@contextlib.contextmanager
def _advisory_lock(connection: Connection, wait_s: float) -> Iterator[None]:
    # lock_timeout bounds the wait for an advisory lock too; afterwards it bounds DDL.
    connection.exec_driver_sql(f"SET lock_timeout = '{int(wait_s * 1000)}ms'")
    try:
        connection.execute(sa.select(sa.func.pg_advisory_lock(ADVISORY_LOCK_KEY)))
    except OperationalError as exc:
        connection.rollback()
        raise MigrationLockTimeout(
            f"another migration held the advisory lock {ADVISORY_LOCK_KEY} for more than "
            f"{wait_s:g}s"
        ) from exc
    connection.exec_driver_sql(f"SET lock_timeout = '{POSTGRES_DDL_LOCK_TIMEOUT}'")
    connection.commit()  # SET (not SET LOCAL) and the session lock outlive the transaction
    try:
        yield
    finally:
        if not connection.invalidated:  # a dead session has released the lock already
            if connection.in_transaction():
                connection.rollback()
            connection.execute(sa.select(sa.func.pg_advisory_unlock(ADVISORY_LOCK_KEY)))
            connection.commit()


@contextlib.contextmanager
def _file_lock(path: Path, wait_s: float) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o660)
    try:
        deadline = time.monotonic() + wait_s
        announced = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise MigrationLockTimeout(
                        f"another migration held {path} for more than {wait_s:g}s"
                    ) from None
                if not announced:
                    log.info("waiting for another migration to finish (%s)", path)
                    announced = True
                # flock has no timeout of its own; a short poll bounds the wait.
                time.sleep(_POLL_S)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
