"""One index on lots by customer instead of two: (customer_id, remaining) replaces
ix_lots_customer_id (every lot of a customer: the audit, the accounts' foreign key) and
ix_lots_live_customer_id (the live lots every purchase loads, `remaining > 0`).

Every lot written paid for both; the composite index answers both reads: the live lots
are the range `remaining > 0` of the customer's entries, so spent lots are skipped inside
the index, as the partial index skipped them. One index entry less per new lot (a lot per
purchase) and per lot whose counters change.

Revision ID: points_0006
Revises: points_0005
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "points_0006"
down_revision: str | None = "points_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Built concurrently before the old ones go: lots are written by every purchase, and a
    # live service must neither stall behind the build nor lose its index in between.
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_lots_customer_id_remaining",
            "lots",
            ["customer_id", "remaining"],
            postgresql_concurrently=True,
            if_not_exists=True,
        )
        for name in ("ix_lots_live_customer_id", "ix_lots_customer_id"):
            op.drop_index(
                name, table_name="lots", postgresql_concurrently=True, if_exists=True
            )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_lots_customer_id",
            "lots",
            ["customer_id"],
            postgresql_concurrently=True,
            if_not_exists=True,
        )
        op.create_index(
            "ix_lots_live_customer_id",
            "lots",
            ["customer_id"],
            postgresql_where="remaining > 0",
            postgresql_concurrently=True,
            if_not_exists=True,
        )
        op.drop_index(
            "ix_lots_customer_id_remaining",
            table_name="lots",
            postgresql_concurrently=True,
            if_exists=True,
        )
