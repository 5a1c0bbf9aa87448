"""Database access: engines for SQLite and PostgreSQL, and the orders the service stores.

Several service processes share one SQLite file, so every SQLite connection runs in WAL mode
with a busy timeout, and the driver's own transaction handling is switched off: a request's
write is one autocommitted ``INSERT ... RETURNING`` statement, which waits for the write lock
instead of failing. Migrations need several statements in one transaction; their engine opens
it with ``BEGIN IMMEDIATE``, taking the write lock up front (a plain ``BEGIN`` followed by a
read and then a write fails at once with "database is locked" when another process writes) --
except on a connection switched to ``AUTOCOMMIT``, where each statement is its own transaction
(a batched backfill relies on that to release the lock between batches).

All functions here block; the web handlers call them in a thread pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url

from service.config import SkuMode

BUSY_TIMEOUT_MS = 10_000
POSTGRES_CONNECT_TIMEOUT_S = 3

metadata = sa.MetaData()

# Every column some release of this code may name. Which item columns one release names
# depends on its SkuMode (ITEM_COLUMNS); queries name columns explicitly, so columns a release
# does not know (added by a later expand migration, nullable) leave it working.
orders = sa.Table(
    "orders",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("item", sa.String(100)),
    sa.Column("sku", sa.String(100)),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("created_by_version", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

ITEM_COLUMNS: dict[SkuMode, tuple[str, ...]] = {
    SkuMode.OFF: ("item",),
    SkuMode.DUAL: ("item", "sku"),
    SkuMode.ONLY: ("sku",),
}
OTHER_ORDER_COLUMNS = ("id", "quantity", "created_by_version", "created_at")


def order_columns(mode: SkuMode) -> tuple[str, ...]:
    """The columns of ``orders`` a release in ``mode`` reads and writes (the same set)."""
    return (*OTHER_ORDER_COLUMNS, *ITEM_COLUMNS[mode])


alembic_version = sa.Table(
    "alembic_version",
    sa.MetaData(),
    sa.Column("version_num", sa.String(32), primary_key=True),
)


@dataclass(frozen=True)
class Order:
    order_id: int
    item: str
    quantity: int
    created_by_version: str
    created_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id,
            "item": self.item,
            "quantity": self.quantity,
            "created_by_version": self.created_by_version,
            "created_at": self.created_at.isoformat(),
        }


def make_engine(url: str, *, immediate_transactions: bool = False) -> Engine:
    """An engine for ``url``; for SQLite, WAL + busy timeout + the transaction mode above.

    ``immediate_transactions`` makes every SQLite transaction start with ``BEGIN IMMEDIATE``
    (for migrations); otherwise each SQLite statement commits on its own.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = sa.create_engine(parsed)
        event.listen(engine, "connect", _configure_sqlite_connection)
        if immediate_transactions:
            event.listen(engine, "begin", _begin_immediate)
        return engine
    return sa.create_engine(
        parsed,
        pool_pre_ping=True,
        connect_args={"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S},
    )


def _configure_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    # The driver must not emit its own BEGIN: the statement itself (or our BEGIN IMMEDIATE)
    # decides the transaction.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def _begin_immediate(connection: Connection) -> None:
    if connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
        return
    connection.exec_driver_sql("BEGIN IMMEDIATE")


class OrderStore:
    """Writes and reads orders; answers which schema revisions the database is at.

    ``sku_mode`` says which item columns this release uses (see :class:`SkuMode`). The API
    stays the same in every mode: an order has an ``item``, wherever it is stored.
    """

    def __init__(self, engine: Engine, sku_mode: SkuMode = SkuMode.OFF) -> None:
        self.engine = engine
        self.sku_mode = sku_mode
        item_columns = [orders.c[name] for name in ITEM_COLUMNS[sku_mode]]
        # DUAL reads the new column first: rows written before the backfill reached them
        # still have only the old one.
        self._item = (
            item_columns[0]
            if len(item_columns) == 1
            else sa.func.coalesce(orders.c.sku, orders.c.item)
        )

    def create_order(self, *, item: str, quantity: int, version: str) -> int:
        statement = (
            sa.insert(orders)
            .values(
                {
                    **{name: item for name in ITEM_COLUMNS[self.sku_mode]},
                    "quantity": quantity,
                    "created_by_version": version,
                    "created_at": datetime.now(UTC),
                }
            )
            .returning(orders.c.id)
        )
        with self.engine.begin() as connection:
            order_id: int = connection.execute(statement).scalar_one()
        return order_id

    def get_order(self, order_id: int) -> Order | None:
        statement = sa.select(
            orders.c.id,
            self._item.label("item"),
            orders.c.quantity,
            orders.c.created_by_version,
            orders.c.created_at,
        ).where(orders.c.id == order_id)
        with self.engine.connect() as connection:
            row = connection.execute(statement).one_or_none()
        if row is None:
            return None
        created_at: datetime = row.created_at
        if created_at.tzinfo is None:  # SQLite keeps no zone; we always write UTC
            created_at = created_at.replace(tzinfo=UTC)
        return Order(row.id, row.item, row.quantity, row.created_by_version, created_at)

    def schema_revisions(self) -> frozenset[str] | None:
        """The Alembic revisions applied to the database; None when it was never migrated."""
        with self.engine.connect() as connection:
            return applied_revisions(connection)

    def close(self) -> None:
        self.engine.dispose()


def applied_revisions(connection: Connection) -> frozenset[str] | None:
    """The Alembic revisions applied to the database; None when it was never migrated."""
    if not sa.inspect(connection).has_table("alembic_version"):
        return None
    return frozenset(connection.execute(sa.select(alembic_version.c.version_num)).scalars())
