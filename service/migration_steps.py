"""Steps the schema revisions share: a batched column copy, and the trigger that keeps ``sku``
filled while a release that knows only ``item`` may still write orders.

A single ``UPDATE orders SET sku = item`` holds its locks for as long as it takes to rewrite
every row: on SQLite the one database-wide write lock (every checkout waits, then times out),
on PostgreSQL the row locks of the whole table (any order being written concurrently waits).
:func:`copy_in_batches` updates :data:`BATCH_ROWS` consecutive ids at a time, each batch
committed on its own, so the service's own writes get in between batches. The revisions call
it inside Alembic's ``autocommit_block()``, where every statement commits as it ends.

The backfill covers the rows that exist when it starts. The release before the change keeps
inserting rows with ``item`` alone -- while it serves, and again after a rollback -- so the
expand revision also installs :data:`SKU_TRIGGER`: an insert that leaves ``sku`` NULL gets
``item`` copied into it. From then on no row lacks ``sku``, which is what lets a later release
read ``sku`` alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

log = logging.getLogger("service")

BATCH_ROWS = 1_000
SKU_TRIGGER = "orders_sku_from_item"

_SQLITE_CREATE_TRIGGER = """
CREATE TRIGGER orders_sku_from_item AFTER INSERT ON orders
FOR EACH ROW WHEN NEW.sku IS NULL
BEGIN
    UPDATE orders SET sku = NEW.item WHERE id = NEW.id;
END
"""
# BEFORE INSERT, so the row is stored complete in one write.
_POSTGRES_CREATE_FUNCTION = """
CREATE FUNCTION orders_sku_from_item() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.sku IS NULL THEN
        NEW.sku := NEW.item;
    END IF;
    RETURN NEW;
END
$$
"""
_POSTGRES_CREATE_TRIGGER = """
CREATE TRIGGER orders_sku_from_item BEFORE INSERT ON orders
FOR EACH ROW EXECUTE FUNCTION orders_sku_from_item()
"""
_POSTGRES_DROP = (
    "DROP TRIGGER IF EXISTS orders_sku_from_item ON orders",
    "DROP FUNCTION IF EXISTS orders_sku_from_item()",
)
_SQLITE_DROP = ("DROP TRIGGER IF EXISTS orders_sku_from_item",)


Progress = Callable[[int, int], None]
"""``progress(last_id_done, max_id)``, called after each committed batch."""


class BackfillError(RuntimeError):
    """The backfill was asked to run inside a transaction, which would make it one lock."""


def copy_in_batches(
    connection: Connection,
    *,
    source: str,
    target: str,
    batch_rows: int = BATCH_ROWS,
    progress: Progress | None = None,
) -> int:
    """Set ``orders.<target>`` to ``orders.<source>`` where it is NULL; return the rows set.

    Covers the ids that exist when it starts; rows inserted later must get ``target`` another
    way (the expand revision's trigger). ``connection`` must be in AUTOCOMMIT mode.
    """
    if connection.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
        raise BackfillError(
            "copy_in_batches needs an AUTOCOMMIT connection (op.get_context().autocommit_block())"
        )
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be >= 1, got {batch_rows}")
    orders = sa.table("orders", sa.column("id"), sa.column(source), sa.column(target))
    low, high = connection.execute(
        sa.select(sa.func.min(orders.c.id), sa.func.max(orders.c.id))
    ).one()
    if low is None:
        return 0
    copied = 0
    last = int(low) - 1
    while last < high:
        upper = min(last + batch_rows, int(high))
        result = connection.execute(
            sa.update(orders)
            .where(orders.c.id > last, orders.c.id <= upper, orders.c[target].is_(None))
            .values({target: orders.c[source]})
        )
        copied += result.rowcount
        last = upper
        if progress is not None:
            progress(last, int(high))
    log.info(
        "copied orders.%s into orders.%s for %d rows (ids up to %d)", source, target, copied, high
    )
    return copied


def create_sku_trigger(connection: Connection) -> None:
    """Install :data:`SKU_TRIGGER` on ``orders`` (in the caller's transaction)."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(_POSTGRES_CREATE_FUNCTION)
        connection.exec_driver_sql(_POSTGRES_CREATE_TRIGGER)
    else:
        connection.exec_driver_sql(_SQLITE_CREATE_TRIGGER)


def drop_sku_trigger(connection: Connection) -> None:
    """Remove :data:`SKU_TRIGGER` (in the caller's transaction)."""
    postgres = connection.dialect.name == "postgresql"
    for statement in _POSTGRES_DROP if postgres else _SQLITE_DROP:
        connection.exec_driver_sql(statement)
