"""A run's account rows written once, not twice: the ledger trigger that moves
`ledger_balance` also applies the run's other account columns, when the run staged them.

Before, a run updated each changed `accounts` row twice: the unit of work's save (tier,
debt, counters), then the ledger's statement trigger (`ledger_balance`). Two new row
versions per customer per batch, most on another page (not HOT), each with its index
entries and a heap lock record. Now the save stages its rows as a JSON document in the
transaction-local setting `points.account_saves` and the trigger writes both in one UPDATE.

`ledger_balance` is still moved by this trigger only, from the ledger lines inserted (the
guard trigger is unchanged): the staged document carries no balance, only columns any
writer holding the row lock may set directly anyway. The trigger clears the setting
after use, so a document is applied at most once.

Revision ID: points_0007
Revises: points_0006
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "points_0007"
down_revision: str | None = "points_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = (
    "tier",
    "debt",
    "lifetime_earned",
    "purchase_count",
    "first_purchase_at",
    "tier_changed_at",
    "next_review_at",
    "settled_points",
    "settled_purchase_count",
)
_SAVED = ",\n            ".join(
    f"{c} = CASE WHEN v.customer_id IS NULL THEN a.{c} ELSE v.{c} END" for c in _COLUMNS
)

# Unchanged from points_0002: the balance a redemption leaves is checked after the update.
_REDEMPTION_CHECK = """IF EXISTS (
        SELECT 1 FROM added AS r JOIN accounts AS a USING (customer_id)
        WHERE r.kind = 'redemption' AND a.ledger_balance < 0
    ) THEN
        RAISE EXCEPTION 'a redemption may not leave the points balance negative'
            USING ERRCODE = 'check_violation';
    END IF;"""

_WITH_SAVES = f"""
CREATE OR REPLACE FUNCTION points_ledger_to_balance() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    saves json := nullif(current_setting('points.account_saves', true), '')::json;
BEGIN
    IF saves IS NOT NULL THEN
        PERFORM set_config('points.account_saves', '', true);
    END IF;
    UPDATE accounts AS a SET
            ledger_balance = a.ledger_balance + coalesce(s.points, 0),
            {_SAVED}
    FROM (SELECT customer_id, sum(points) AS points FROM added GROUP BY customer_id) AS s
    FULL JOIN json_to_recordset(saves) AS v(customer_id text, tier text, debt bigint,
        lifetime_earned bigint, purchase_count integer, first_purchase_at timestamptz,
        tier_changed_at timestamptz, next_review_at timestamptz, settled_points bigint,
        settled_purchase_count integer) ON v.customer_id = s.customer_id
    WHERE a.customer_id = coalesce(s.customer_id, v.customer_id);
    {_REDEMPTION_CHECK}
    RETURN NULL;
END $$
"""

_BALANCE_ONLY = f"""
CREATE OR REPLACE FUNCTION points_ledger_to_balance() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE accounts AS a SET ledger_balance = a.ledger_balance + s.points
    FROM (SELECT customer_id, sum(points) AS points FROM added GROUP BY customer_id) AS s
    WHERE a.customer_id = s.customer_id;
    {_REDEMPTION_CHECK}
    RETURN NULL;
END $$
"""


def upgrade() -> None:
    op.execute(_WITH_SAVES)


def downgrade() -> None:
    op.execute(_BALANCE_ONLY)
