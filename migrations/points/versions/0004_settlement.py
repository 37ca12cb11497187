"""Settlement, line-level returns and claim debits.

Revision ID: points_0004
Revises: points_0003
Create Date: 2026-12-06

- `order_earnings.settles_at` / `settled_at`: when an order's return window ends and when
  `points.settled` went out for it; a partial index on unsettled orders lets the
  settlement job claim due orders in O(due).
- `order_earnings.lines` / `returned`: the receipt lines with the weight each earned with
  and the value returned per line, so a return naming lines takes back what they earned.
- `order_returns.items`: the lines a return named.
- `accounts.settled_points` / `settled_purchase_count`: the settled totals the event carries.
- `redemptions.claim_id`: a debit made for a rewards catalogue claim, which only the saga
  may give back.

Existing orders whose return window already ended are marked settled at their own
`settles_at` without an event: the tiers and rewards of the past counted them already.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision: str = "points_0004"
down_revision: str | None = "points_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)

_BACKFILL = [
    # The lot's pending_until is the window the purchase got; 0-point orders have no lot.
    """
    UPDATE order_earnings AS o SET settles_at = coalesce(
        (SELECT l.pending_until FROM lots AS l WHERE l.lot_id = o.lot_id),
        o.occurred_at + interval '14 days')
    """,
    "UPDATE order_earnings SET settled_at = settles_at WHERE settles_at <= now()",
    """
    UPDATE accounts AS a SET settled_points = s.points, settled_purchase_count = s.purchases
    FROM (SELECT customer_id, sum(points - reversed_points) AS points,
                 count(*) FILTER (WHERE refunded_minor < amount_minor) AS purchases
          FROM order_earnings WHERE settled_at IS NOT NULL GROUP BY customer_id) AS s
    WHERE a.customer_id = s.customer_id
    """,
    """
    UPDATE redemptions SET claim_id = substr(idempotency_key, 6)
    WHERE idempotency_key LIKE 'saga:%'
    """,
]


def upgrade() -> None:
    op.add_column("order_earnings", sa.Column("lines", pg.JSONB))
    op.add_column("order_earnings", sa.Column("returned", pg.JSONB))
    op.add_column("order_earnings", sa.Column("settles_at", TZ))
    op.add_column("order_earnings", sa.Column("settled_at", TZ))
    op.add_column("order_returns", sa.Column("items", pg.JSONB))
    op.add_column(
        "accounts",
        sa.Column("settled_points", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.add_column(
        "accounts",
        sa.Column("settled_purchase_count", sa.Integer, nullable=False, server_default="0"),
    )
    op.add_column("redemptions", sa.Column("claim_id", sa.Text))
    for statement in _BACKFILL:
        op.execute(statement)
    op.alter_column("order_earnings", "settles_at", nullable=False)
    op.create_check_constraint(
        "ck_accounts_settled_not_negative",
        "accounts",
        "settled_points >= 0 AND settled_purchase_count >= 0",
    )
    op.create_index(
        "ix_order_earnings_unsettled_settles_at",
        "order_earnings",
        ["settles_at"],
        postgresql_where=sa.text("settled_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_order_earnings_unsettled_settles_at", table_name="order_earnings")
    op.drop_constraint("ck_accounts_settled_not_negative", "accounts", type_="check")
    op.drop_column("redemptions", "claim_id")
    op.drop_column("accounts", "settled_purchase_count")
    op.drop_column("accounts", "settled_points")
    op.drop_column("order_returns", "items")
    for column in ("settled_at", "settles_at", "returned", "lines"):
        op.drop_column("order_earnings", column)
