"""Big bang (the counter-example): rename ``orders.item`` to ``sku`` in one step.

Revision ID: 0002_bigbang_item_to_sku
Revises: 0001_create_orders
Create Date: 2025-02-01 00:00:00

What the expand/contract pair does in two deploys, done in the deploy of the release that
needs it (SERVICE_ORDER_SKU=only). The rename is instant and takes hardly any lock -- and the
release still serving, which is also the rollback target, names ``item`` in every query: from
the moment this commits, its checkouts and order reads fail, and rolling back to it cannot
help. It lives on a line of its own (``versions/big_bang``), loaded only by a release that
asks for it, so the expand/contract line never applies it.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002_bigbang_item_to_sku"
down_revision: str | Sequence[str] | None = "0001_create_orders"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# PostgreSQL and SQLite (3.25+) both rename in place, without copying the table.
def upgrade() -> None:
    op.execute("ALTER TABLE orders RENAME COLUMN item TO sku")


def downgrade() -> None:
    op.execute("ALTER TABLE orders RENAME COLUMN sku TO item")
