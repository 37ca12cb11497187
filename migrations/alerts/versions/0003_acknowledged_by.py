"""Who acknowledged an alert; open alerts by merchant, ranked by value at risk.

Revision ID: alerts_0003
Revises: alerts_0002
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "alerts_0003"
down_revision: str | None = "alerts_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The API key that acknowledged first, and the name its holder gave (both kept for audit).
    op.add_column("alerts", sa.Column("acknowledged_by", sa.Text))
    op.add_column("alerts", sa.Column("acknowledged_key_id", sa.Text))
    op.execute("UPDATE alerts SET acknowledged_by = 'unknown' WHERE acknowledged_at IS NOT NULL")
    op.create_check_constraint(
        "ck_alerts_acknowledgement",
        "alerts",
        "(acknowledged_at IS NULL) = (acknowledged_by IS NULL)",
    )
    # A store's at-risk list: open alerts of one merchant, most at stake first.
    op.create_index(
        "ix_alerts_open_merchant_by_value",
        "alerts",
        ["merchant_id", sa.text("value_at_risk_minor DESC"), "alert_id"],
        postgresql_where=sa.text("closed_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_alerts_open_merchant_by_value", table_name="alerts")
    op.drop_constraint("ck_alerts_acknowledgement", "alerts", type_="check")
    op.drop_column("alerts", "acknowledged_key_id")
    op.drop_column("alerts", "acknowledged_by")
