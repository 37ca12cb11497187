"""Return-safe milestones and referral rewards; points taken back outside the saga.

Revision ID: rewards_0005
Revises: rewards_0004
Create Date: 2026-12-06

- `customers.settled_points`: the customer's `settled_lifetime_points` from the newest
  `points.settled`, what "every N lifetime points" milestones count (a purchase returned
  within its window never reaches it).
- `catalogue_claims.redemption_id`: the points service's redemption behind a claim's
  debit (from `points.debited`), indexed, so a cancellation of that redemption is found.
- `returned_redemptions`: every `points.redemption_cancelled` rewards has read, by
  redemption id, whatever order it arrives in; the invariants join it to the claims.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "rewards_0005"
down_revision: str | None = "rewards_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UPGRADE = """
ALTER TABLE customers ADD COLUMN settled_points bigint NOT NULL DEFAULT 0;
ALTER TABLE customers ADD CONSTRAINT ck_customers_settled_points_not_negative
    CHECK (settled_points >= 0);
ALTER TABLE catalogue_claims ADD COLUMN redemption_id text;
CREATE INDEX ix_catalogue_claims_redemption_id ON catalogue_claims (redemption_id)
    WHERE redemption_id IS NOT NULL;
CREATE TABLE returned_redemptions (
    redemption_id text PRIMARY KEY,
    customer_id text NOT NULL,
    merchant_id text NOT NULL,
    points bigint NOT NULL,
    returned_at timestamptz NOT NULL
)
"""

DOWNGRADE = """
DROP TABLE returned_redemptions;
DROP INDEX ix_catalogue_claims_redemption_id;
ALTER TABLE catalogue_claims DROP COLUMN redemption_id;
ALTER TABLE customers DROP CONSTRAINT ck_customers_settled_points_not_negative;
ALTER TABLE customers DROP COLUMN settled_points
"""


def _run(script: str) -> None:
    # One statement at a time: asyncpg prepares each, and a prepared statement holds one.
    for statement in script.split(";\n"):
        if statement.strip():
            op.execute(statement)


def upgrade() -> None:
    _run(UPGRADE)


def downgrade() -> None:
    _run(DOWNGRADE)
