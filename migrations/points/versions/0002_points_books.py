"""Points books: accounts, append-only ledger, lots, orders, returns, rules, redemptions.

Revision ID: points_0002
Revises: points_0001
Create Date: 2026-11-23

Invariants the database enforces (see services/points/db.py for the why):
- ledger: append-only (trigger), once per (kind, reference), sign fixed by kind;
- accounts.ledger_balance = sum of the customer's ledger entries, maintained by a
  statement-level trigger on ledger inserts and changeable by nothing else; a
  redemption that leaves it negative is refused;
- lots: counters never negative and never above the lot's points; `remaining` generated.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision: str = "points_0002"
down_revision: str | None = "points_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)
SIGN_RULE = (
    "(kind IN ('accrual', 'credit', 'redemption_cancel') AND points > 0)"
    " OR (kind IN ('reversal', 'redemption', 'expiry') AND points < 0)"
    " OR (kind = 'adjustment' AND points <> 0 AND reason IS NOT NULL AND actor IS NOT NULL)"
)


def _recorded_at() -> sa.Column:
    return sa.Column("recorded_at", TZ, nullable=False, server_default=sa.func.now())


def _create_accounts() -> None:
    op.create_table(
        "accounts",
        sa.Column("customer_id", sa.Text, nullable=False),
        sa.Column("tier", sa.Text, nullable=False, server_default="member"),
        sa.Column("debt", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("ledger_balance", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("lifetime_earned", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("purchase_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("first_purchase_at", TZ),
        sa.Column("tier_changed_at", TZ),
        sa.Column("next_review_at", TZ),
        _recorded_at(),
        sa.PrimaryKeyConstraint("customer_id", name="pk_accounts"),
        sa.CheckConstraint(
            "tier IN ('member', 'silver', 'gold', 'platinum')", name="ck_accounts_tier_known"
        ),
        sa.CheckConstraint("debt >= 0", name="ck_accounts_debt_not_negative"),
        sa.CheckConstraint("purchase_count >= 0", name="ck_accounts_purchase_count_not_negative"),
    )
    op.create_index(
        "ix_accounts_next_review_at",
        "accounts",
        ["next_review_at"],
        postgresql_where=sa.text("next_review_at IS NOT NULL"),
    )


def _create_ledger() -> None:
    op.create_table(
        "ledger",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("customer_id", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("points", sa.BigInteger, nullable=False),
        sa.Column("merchant_id", sa.Text),
        sa.Column("reference", sa.Text, nullable=False),
        sa.Column("occurred_at", TZ, nullable=False),
        _recorded_at(),
        sa.Column("reason", sa.Text),
        sa.Column("actor", sa.Text),
        sa.Column("event_id", pg.UUID(as_uuid=True)),
        sa.PrimaryKeyConstraint("id", name="pk_ledger"),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["accounts.customer_id"], name="fk_ledger_customer_id_accounts"
        ),
        sa.UniqueConstraint("kind", "reference", name="uq_ledger_kind_reference"),
        sa.CheckConstraint(
            "kind IN ('accrual', 'reversal', 'redemption', 'redemption_cancel', 'expiry',"
            " 'adjustment', 'credit')",
            name="ck_ledger_kind_known",
        ),
        sa.CheckConstraint(SIGN_RULE, name="ck_ledger_sign_matches_kind"),
    )
    op.create_index("ix_ledger_customer_id_id", "ledger", ["customer_id", "id"])


def _create_lots() -> None:
    op.create_table(
        "lots",
        sa.Column("lot_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("customer_id", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("points", sa.BigInteger, nullable=False),
        sa.Column("redeemed", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("clawed_back", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("expired", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column(
            "remaining",
            sa.BigInteger,
            sa.Computed("points - redeemed - clawed_back - expired", persisted=True),
            nullable=False,
        ),
        sa.Column("earned_at", TZ, nullable=False),
        sa.Column("pending_until", TZ, nullable=False),
        sa.Column("expires_at", TZ, nullable=False),
        sa.Column("merchant_id", sa.Text),
        sa.Column("reference", sa.Text),
        _recorded_at(),
        sa.PrimaryKeyConstraint("lot_id", name="pk_lots"),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["accounts.customer_id"], name="fk_lots_customer_id_accounts"
        ),
        sa.CheckConstraint(
            "source IN ('accrual', 'credit', 'adjustment')", name="ck_lots_source_known"
        ),
        sa.CheckConstraint("points > 0", name="ck_lots_points_positive"),
        sa.CheckConstraint(
            "redeemed >= 0 AND clawed_back >= 0 AND expired >= 0",
            name="ck_lots_counters_not_negative",
        ),
        sa.CheckConstraint(
            "redeemed + clawed_back + expired <= points", name="ck_lots_counters_within_points"
        ),
        sa.CheckConstraint(
            "earned_at <= pending_until AND pending_until <= expires_at", name="ck_lots_dates"
        ),
    )
    op.create_index("ix_lots_customer_id", "lots", ["customer_id"])
    op.create_index(
        "ix_lots_live_customer_id",
        "lots",
        ["customer_id"],
        postgresql_where=sa.text("remaining > 0"),
    )
    # The expiry job reads this index only: its cost grows with the lots due, not with all lots.
    op.create_index(
        "ix_lots_live_expires_at",
        "lots",
        ["expires_at"],
        postgresql_where=sa.text("remaining > 0"),
    )


def _create_orders_and_returns() -> None:
    op.create_table(
        "order_earnings",
        sa.Column("order_id", sa.Text, nullable=False),
        sa.Column("customer_id", sa.Text, nullable=False),
        sa.Column("merchant_id", sa.Text, nullable=False),
        sa.Column("event_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("occurred_at", TZ, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("spend_minor", sa.BigInteger, nullable=False),
        sa.Column("points", sa.BigInteger, nullable=False),
        sa.Column("refunded_minor", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("reversed_points", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("lot_id", pg.UUID(as_uuid=True)),
        _recorded_at(),
        sa.PrimaryKeyConstraint("order_id", name="pk_order_earnings"),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["accounts.customer_id"],
            name="fk_order_earnings_customer_id_accounts",
        ),
        sa.ForeignKeyConstraint(["lot_id"], ["lots.lot_id"], name="fk_order_earnings_lot_id_lots"),
        sa.CheckConstraint(
            "amount_minor >= 0 AND spend_minor >= 0", name="ck_order_earnings_amounts_not_negative"
        ),
        sa.CheckConstraint("refunded_minor >= 0", name="ck_order_earnings_refunded_not_negative"),
        sa.CheckConstraint(
            "points >= 0 AND reversed_points >= 0 AND reversed_points <= points",
            name="ck_order_earnings_reversal_within_points",
        ),
    )
    op.create_index(
        "ix_order_earnings_customer_id_occurred_at",
        "order_earnings",
        ["customer_id", "occurred_at"],
    )
    op.create_table(
        "order_returns",
        sa.Column("return_id", sa.Text, nullable=False),
        sa.Column("order_id", sa.Text, nullable=False),
        sa.Column("customer_id", sa.Text, nullable=False),
        sa.Column("merchant_id", sa.Text, nullable=False),
        sa.Column("event_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("occurred_at", TZ, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("refunded_minor", sa.BigInteger, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("points_reversed", sa.BigInteger),
        sa.Column("rejection", sa.Text),
        sa.Column("applied_at", TZ),
        _recorded_at(),
        sa.PrimaryKeyConstraint("return_id", name="pk_order_returns"),
        sa.CheckConstraint(
            "status IN ('parked', 'applied', 'rejected')", name="ck_order_returns_status_known"
        ),
        sa.CheckConstraint("refunded_minor > 0", name="ck_order_returns_refund_positive"),
    )
    op.create_index(
        "ix_order_returns_parked_order_id",
        "order_returns",
        ["order_id"],
        postgresql_where=sa.text("status = 'parked'"),
    )


def _create_rules_and_redemptions() -> None:
    op.create_table(
        "daily_earnings",
        sa.Column("customer_id", sa.Text, nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("points", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("customer_id", "day", name="pk_daily_earnings"),
    )
    op.create_table(
        "earning_rules",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("effective_from", TZ, nullable=False),
        sa.Column("rules", pg.JSONB, nullable=False),
        sa.Column("tier_policy", pg.JSONB),
        sa.Column("created_by", sa.Text, nullable=False),
        _recorded_at(),
        sa.PrimaryKeyConstraint("id", name="pk_earning_rules"),
        sa.UniqueConstraint("effective_from", name="uq_earning_rules_effective_from"),
    )
    op.create_table(
        "redemptions",
        sa.Column("redemption_id", pg.UUID(as_uuid=True), nullable=False),
        sa.Column("customer_id", sa.Text, nullable=False),
        sa.Column("idempotency_key", sa.Text, nullable=False),
        sa.Column("request_fingerprint", pg.BYTEA, nullable=False),
        sa.Column("points", sa.BigInteger, nullable=False),
        sa.Column("merchant_id", sa.Text, nullable=False),
        sa.Column("reference", sa.Text, nullable=False),
        sa.Column("draws", pg.JSONB, nullable=False),
        sa.Column("occurred_at", TZ, nullable=False),
        sa.Column("cancelled_at", TZ),
        _recorded_at(),
        sa.PrimaryKeyConstraint("redemption_id", name="pk_redemptions"),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["accounts.customer_id"], name="fk_redemptions_customer_id_accounts"
        ),
        sa.UniqueConstraint(
            "customer_id", "idempotency_key", name="uq_redemptions_customer_id_idempotency_key"
        ),
        sa.CheckConstraint("points > 0", name="ck_redemptions_points_positive"),
    )


_TRIGGERS = [
    # Append-only ledger: corrections are new entries (adjustments), never edits.
    """
    CREATE FUNCTION points_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'the points ledger is append-only: % refused', TG_OP
            USING ERRCODE = 'restrict_violation';
    END $$
    """,
    """
    CREATE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE ON ledger
        FOR EACH ROW EXECUTE FUNCTION points_ledger_append_only()
    """,
    """
    CREATE TRIGGER ledger_no_truncate BEFORE TRUNCATE ON ledger
        FOR EACH STATEMENT EXECUTE FUNCTION points_ledger_append_only()
    """,
    # accounts.ledger_balance follows the ledger, one UPDATE per customer per statement.
    """
    CREATE FUNCTION points_ledger_to_balance() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE accounts AS a SET ledger_balance = a.ledger_balance + s.points
        FROM (SELECT customer_id, sum(points) AS points FROM added GROUP BY customer_id) AS s
        WHERE a.customer_id = s.customer_id;
        IF EXISTS (
            SELECT 1 FROM added AS r JOIN accounts AS a USING (customer_id)
            WHERE r.kind = 'redemption' AND a.ledger_balance < 0
        ) THEN
            RAISE EXCEPTION 'a redemption may not leave the points balance negative'
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER ledger_to_balance AFTER INSERT ON ledger
        REFERENCING NEW TABLE AS added
        FOR EACH STATEMENT EXECUTE FUNCTION points_ledger_to_balance()
    """,
    # Nothing but the trigger above may move ledger_balance (it runs one trigger level deep).
    """
    CREATE FUNCTION points_guard_ledger_balance() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF pg_trigger_depth() < 2 THEN
            RAISE EXCEPTION 'accounts.ledger_balance follows the ledger and cannot be set'
                USING ERRCODE = 'restrict_violation';
        END IF;
        RETURN NEW;
    END $$
    """,
    """
    CREATE TRIGGER accounts_guard_ledger_balance BEFORE UPDATE ON accounts
        FOR EACH ROW WHEN (NEW.ledger_balance IS DISTINCT FROM OLD.ledger_balance)
        EXECUTE FUNCTION points_guard_ledger_balance()
    """,
    """
    CREATE TRIGGER accounts_ledger_balance_starts_at_zero BEFORE INSERT ON accounts
        FOR EACH ROW WHEN (NEW.ledger_balance <> 0)
        EXECUTE FUNCTION points_guard_ledger_balance()
    """,
]


def upgrade() -> None:
    _create_accounts()
    _create_ledger()
    _create_lots()
    _create_orders_and_returns()
    _create_rules_and_redemptions()
    for statement in _TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS accounts_ledger_balance_starts_at_zero ON accounts")
    op.execute("DROP TRIGGER IF EXISTS accounts_guard_ledger_balance ON accounts")
    op.execute("DROP TRIGGER IF EXISTS ledger_to_balance ON ledger")
    op.execute("DROP TRIGGER IF EXISTS ledger_no_truncate ON ledger")
    op.execute("DROP TRIGGER IF EXISTS ledger_append_only ON ledger")
    for table in (
        "redemptions",
        "earning_rules",
        "daily_earnings",
        "order_returns",
        "order_earnings",
        "lots",
        "ledger",
        "accounts",
    ):
        op.drop_table(table)
    op.execute("DROP FUNCTION IF EXISTS points_guard_ledger_balance()")
    op.execute("DROP FUNCTION IF EXISTS points_ledger_to_balance()")
    op.execute("DROP FUNCTION IF EXISTS points_ledger_append_only()")
