"""Alembic environment of the service: runs migrations online against one connection.

``service.schema`` passes an open connection (its SQLite engine starts transactions with
BEGIN IMMEDIATE) and, when it holds the migration lock already, says so; the ``alembic`` CLI
path builds a connection from SERVICE_DATABASE_URL. Either way migrations run under the
database's migration lock (``service.migration_lock``: a PostgreSQL advisory lock, a file lock
beside an SQLite database), so pods migrating at the same moment take turns.

Each revision runs in a transaction of its own: a revision with a batched backfill commits in
the middle (Alembic's ``autocommit_block``), and the revisions before it stay applied.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy.engine import Connection

from service.config import database_url_from_env
from service.db import make_engine
from service.migration_lock import migration_lock
from service.schema import LOCK_HELD_ATTRIBUTE


def _run(connection: Connection, *, lock_held: bool) -> None:
    context.configure(
        connection=connection,
        # SQLite can roll DDL back too; each revision is then one transaction.
        transactional_ddl=True,
        transaction_per_migration=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    if lock_held:
        _migrate()
        return
    with migration_lock(connection):
        _migrate()


def _migrate() -> None:
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    config = context.config
    connection = config.attributes.get("connection")
    lock_held = bool(config.attributes.get(LOCK_HELD_ATTRIBUTE))
    if isinstance(connection, Connection):
        _run(connection, lock_held=lock_held)
        return
    url = config.attributes.get("database_url") or database_url_from_env(os.environ)
    engine = make_engine(url, immediate_transactions=True)
    try:
        with engine.connect() as new_connection:
            _run(new_connection, lock_held=False)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported; run them online")
run_migrations_online()
