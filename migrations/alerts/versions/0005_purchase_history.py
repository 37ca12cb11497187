"""Every purchase's date (exact visit counts whatever the arrival order; the backtest), the
no-purchase-probability rule, and the caller's own words on an acknowledgement.

Revision ID: alerts_0005
Revises: alerts_0004
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision: str = "alerts_0005"
down_revision: str | None = "alerts_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_RULES_BEFORE = "rule IN ('inactivity', 'own_rhythm', 'alive_probability')"
_RULES_AFTER = (
    "rule IN ('inactivity', 'own_rhythm', 'alive_probability', 'no_purchase_probability')"
)


def upgrade() -> None:
    # One row per purchase, written by the consumer in the batch's transaction. Customers who
    # bought before this revision have no rows for those purchases (they were never kept);
    # their summaries stay as they were, and the backtest sees only what was recorded.
    op.create_table(
        "purchase_history",
        sa.Column("customer_id", sa.Text, nullable=False),
        sa.Column("event_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("purchased_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("merchant_id", sa.Text, nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("customer_id", "event_id", name="pk_purchase_history"),
        sa.CheckConstraint("amount_minor >= 0", name="ck_purchase_history_amount"),
    )
    op.create_index("ix_purchase_history_purchased_at", "purchase_history", ["purchased_at"])
    op.drop_constraint("ck_alerts_rule", "alerts", type_="check")
    op.create_check_constraint("ck_alerts_rule", "alerts", _RULES_AFTER)
    # acknowledged_by is now the API key's name; what the caller typed is kept beside it.
    op.add_column("alerts", sa.Column("ack_claimed_by", sa.Text))


def downgrade() -> None:
    op.drop_column("alerts", "ack_claimed_by")
    op.drop_constraint("ck_alerts_rule", "alerts", type_="check")
    # The older schema knows no such rule; the nearest one it knows is the model's other rule.
    op.execute(
        "UPDATE alerts SET rule = 'alive_probability' WHERE rule = 'no_purchase_probability'"
    )
    op.create_check_constraint("ck_alerts_rule", "alerts", _RULES_BEFORE)
    op.drop_index("ix_purchase_history_purchased_at", table_name="purchase_history")
    op.drop_table("purchase_history")
