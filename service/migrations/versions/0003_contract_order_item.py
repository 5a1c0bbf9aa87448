"""Contract: drop ``orders.item``; ``sku`` becomes NOT NULL.

Revision ID: 0003_contract_order_item
Revises: 0002_expand_order_sku
Create Date: 2025-03-01 00:00:00

A later deploy than the expand. Apply it only when no release that may still run -- the one
serving, or the one a rollback would return to -- reads or writes ``item``: after a release
that uses ``sku`` alone (SERVICE_ORDER_SKU=only) has been fully promoted, and the dual-writing
release is no longer in the rollout's revision history. Ships with a release that needs it
(SERVICE_SCHEMA_REVISION=0003_contract_order_item, SERVICE_ORDER_SKU=only).

Every row has ``sku`` by then (the expand's backfill and trigger); the copy below is a guard
that finds nothing to do. On PostgreSQL, ``sku`` is proven non-null by a ``NOT VALID`` check
validated separately, so that ``SET NOT NULL`` needs no scan of the table under its exclusive
lock; on SQLite, dropping the column and tightening ``sku`` copy the table once.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from service.migration_steps import copy_in_batches, create_sku_trigger, drop_sku_trigger

revision: str = "0003_contract_order_item"
down_revision: str | Sequence[str] | None = "0002_expand_order_sku"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CHECK = "orders_sku_not_null"


def upgrade() -> None:
    drop_sku_trigger(op.get_bind())
    with op.get_context().autocommit_block():
        copy_in_batches(op.get_bind(), source="item", target="sku")
        if op.get_bind().dialect.name == "postgresql":
            op.execute(f"ALTER TABLE orders ADD CONSTRAINT {_CHECK} CHECK (sku IS NOT NULL) NOT VALID")
            op.execute(f"ALTER TABLE orders VALIDATE CONSTRAINT {_CHECK}")
    with op.batch_alter_table("orders") as batch:
        batch.alter_column("sku", existing_type=sa.String(100), nullable=False)
        batch.drop_column("item")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE orders DROP CONSTRAINT {_CHECK}")


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("item", sa.String(100), nullable=True))
        batch.alter_column("sku", existing_type=sa.String(100), nullable=True)
    op.execute("UPDATE orders SET item = sku")
    create_sku_trigger(op.get_bind())
