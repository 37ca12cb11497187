"""Each merchant's grants per budget month, kept as they are written.

The merchant budget cap read, for every consumer batch, the sum of all the merchant's
grants in the month: a scan that grew with every grant (in `python -m bench rewards`, one
merchant, ~20 ms of PostgreSQL per batch by 20,000 grants, and growing all month).
`merchant_month_grants` holds that sum per (merchant, UTC month); statement triggers on
`compensations` add what each INSERT, COPY, UPDATE or DELETE changes among granted rows
(their transition tables, so an API call, a migration or hand-written SQL all count), and
a TRUNCATE empties it. A statement that moves no granted amount touches no row. Every
writer of a granted compensation already holds the merchant's advisory lock, and the
rows are updated in (merchant, month) order, so their locks add no wait and no deadlock.
Filled from the existing rows.

Revision ID: rewards_0008
Revises: rewards_0007
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "rewards_0008"
down_revision: str | None = "rewards_0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The budget month of a grant, as the cap reads it (`domain.guarantee_limits.budget_month`).
_MONTH = "date_trunc('month', timezone('UTC', decided_at))"
_GRANTED = f"merchant_id, {_MONTH}, refund_minor + voucher_value_minor, points"
_ADD = (
    "INSERT INTO merchant_month_grants AS t (merchant_id, month, money_minor, points)"
    " SELECT merchant_id, month, sum(money), sum(points) FROM ({rows}) AS d"
    " (merchant_id, month, money, points) GROUP BY merchant_id, month"
    " HAVING sum(money) <> 0 OR sum(points) <> 0 ORDER BY merchant_id, month"
    " ON CONFLICT (merchant_id, month) DO UPDATE"
    " SET money_minor = t.money_minor + EXCLUDED.money_minor,"
    " points = t.points + EXCLUDED.points"
)
_NEW = f"SELECT {_GRANTED} FROM new_rows WHERE status = 'granted'"
_OLD = (
    f"SELECT merchant_id, {_MONTH}, -(refund_minor + voucher_value_minor), -points"
    " FROM old_rows WHERE status = 'granted'"
)

UPGRADE = f"""
CREATE TABLE merchant_month_grants (
    merchant_id text NOT NULL,
    month timestamp without time zone NOT NULL,
    money_minor bigint NOT NULL,
    points bigint NOT NULL,
    CONSTRAINT pk_merchant_month_grants PRIMARY KEY (merchant_id, month)
);
INSERT INTO merchant_month_grants (merchant_id, month, money_minor, points)
 SELECT merchant_id, {_MONTH}, sum(refund_minor + voucher_value_minor), sum(points)
 FROM compensations WHERE status = 'granted' GROUP BY 1, 2;
CREATE FUNCTION count_inserted_grants() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN {_ADD.format(rows=_NEW)}; RETURN NULL; END $$;
CREATE FUNCTION count_updated_grants() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN {_ADD.format(rows=_NEW + " UNION ALL " + _OLD)}; RETURN NULL; END $$;
CREATE FUNCTION count_deleted_grants() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN {_ADD.format(rows=_OLD)}; RETURN NULL; END $$;
CREATE FUNCTION forget_grants() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN DELETE FROM merchant_month_grants; RETURN NULL; END $$;
CREATE TRIGGER compensations_month_insert AFTER INSERT ON compensations
 REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION count_inserted_grants();
CREATE TRIGGER compensations_month_update AFTER UPDATE ON compensations
 REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
 FOR EACH STATEMENT EXECUTE FUNCTION count_updated_grants();
CREATE TRIGGER compensations_month_delete AFTER DELETE ON compensations
 REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION count_deleted_grants();
CREATE TRIGGER compensations_month_truncate AFTER TRUNCATE ON compensations
 FOR EACH STATEMENT EXECUTE FUNCTION forget_grants()
"""

DOWNGRADE = """
DROP TRIGGER compensations_month_truncate ON compensations;
DROP TRIGGER compensations_month_delete ON compensations;
DROP TRIGGER compensations_month_update ON compensations;
DROP TRIGGER compensations_month_insert ON compensations;
DROP FUNCTION forget_grants();
DROP FUNCTION count_deleted_grants();
DROP FUNCTION count_updated_grants();
DROP FUNCTION count_inserted_grants();
DROP TABLE merchant_month_grants
"""


def _run(script: str) -> None:
    # One statement at a time: asyncpg prepares each, and a prepared statement holds one.
    # The functions' bodies hold semicolons, none of them at the end of a line.
    for statement in script.split(";\n"):
        if statement.strip():
            op.execute(statement)


def upgrade() -> None:
    _run(UPGRADE)


def downgrade() -> None:
    _run(DOWNGRADE)
