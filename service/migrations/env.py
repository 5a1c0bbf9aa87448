"""Alembic environment of the service: runs migrations online against one connection.

``service.schema.upgrade`` passes an open connection (its SQLite engine starts transactions
with BEGIN IMMEDIATE); the ``alembic`` CLI path builds one from SERVICE_DATABASE_URL.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy.engine import Connection

from service.config import database_url_from_env
from service.db import make_engine


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        # SQLite can roll DDL back too; the whole upgrade is then one transaction.
        transactional_ddl=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    config = context.config
    connection = config.attributes.get("connection")
    if isinstance(connection, Connection):
        _run(connection)
        return
    url = config.attributes.get("database_url") or database_url_from_env(os.environ)
    engine = make_engine(url, immediate_transactions=True)
    try:
        with engine.connect() as new_connection:
            _run(new_connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported; run them online")
run_migrations_online()
