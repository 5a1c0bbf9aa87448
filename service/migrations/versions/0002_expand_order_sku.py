"""Expand: an order's item gets a column of its own, ``sku``, beside the old ``item``.

Revision ID: 0002_expand_order_sku
Revises: 0001_create_orders
Create Date: 2025-02-01 00:00:00

Ships with the release that writes both columns and reads ``sku``, falling back to ``item``
(SERVICE_ORDER_SKU=dual). The release before it knows only ``item`` and keeps working on this
schema, so it stays a safe rollback target:

- ``sku`` is added nullable: the old release's inserts do not name it;
- ``item`` becomes nullable, so that a later release can stop writing it before the contract
  revision drops it (on PostgreSQL a catalogue change; on SQLite a copy of the table, which
  SQLite needs for any change of a column's constraints);
- a trigger fills ``sku`` from ``item`` on every insert that leaves it NULL, covering the rows
  the old release writes from now on (during the canary, and after a rollback);
- the rows already there are backfilled after the DDL has committed, in batches that each
  commit on their own (``service.migration_steps``): no single long lock on ``orders``.

If the process dies during the backfill, the DDL has committed but the revision is not
stamped; the next run finds ``sku`` present, skips the DDL and resumes the backfill.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from service.migration_steps import copy_in_batches, create_sku_trigger, drop_sku_trigger

revision: str = "0002_expand_order_sku"
down_revision: str | Sequence[str] | None = "0001_create_orders"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("service")


def upgrade() -> None:
    bind = op.get_bind()
    columns = {column["name"] for column in sa.inspect(bind).get_columns("orders")}
    if "sku" not in columns:
        with op.batch_alter_table("orders") as batch:
            batch.add_column(sa.Column("sku", sa.String(100), nullable=True))
            batch.alter_column("item", existing_type=sa.String(100), nullable=True)
        # After the batch: on SQLite it re-creates the table, and triggers go with the old one.
        create_sku_trigger(bind)
    else:
        log.info("orders.sku exists already: resuming the backfill of an interrupted run")
    with op.get_context().autocommit_block():
        copy_in_batches(op.get_bind(), source="item", target="sku")


def downgrade() -> None:
    bind = op.get_bind()
    drop_sku_trigger(bind)
    # Rows written by a release that no longer writes item get it back from sku.
    op.execute("UPDATE orders SET item = sku WHERE item IS NULL")
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("sku")
        batch.alter_column("item", existing_type=sa.String(100), nullable=False)
