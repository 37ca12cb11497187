"""Compensation no caller can game: recorded orders, held reports, default caps, green channel.

Revision ID: rewards_0004
Revises: rewards_0003
Create Date: 2026-12-06

- `orders`: every purchase this service saw on `pos.purchases` (customer, merchant,
  amount, currency, time) and `order_returns`, which reduce it. Compensation pays on this
  record, never on an amount a claim or an incident states.
- `held_reports`: incidents and claims for an order not recorded yet (`order_unknown`);
  the purchase's arrival releases them, once (the row is deleted in that transaction).
- `guarantee_policies.self_reported_max_tier`: the highest tier a customer's own report
  reaches without an incident or a person confirming it (default 1).
- `reward_definitions.value_minor` + `currency`: what a voucher is worth, so caps count it.
- `merchant_limits`: points caps, and a seeded default row `*` (the caps of every merchant
  that configured none, field by field): per customer per 30 days 100.00 in money
  (refunds plus voucher value), 5 breaches, 5,000 points; per merchant per month
  5,000.00 in money and 250,000 points.
- `compensations`: the voucher value counted, escalation and overdue marks, the
  reviewer's note; `guarantee_claims`: overdue mark, amount optional (taken from the record).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "rewards_0004"
down_revision: str | None = "rewards_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UPGRADE = """
CREATE TABLE orders (
    order_id text PRIMARY KEY,
    customer_id text NOT NULL,
    merchant_id text NOT NULL,
    amount_minor bigint NOT NULL,
    returned_minor bigint NOT NULL DEFAULT 0,
    currency text NOT NULL,
    ordered_at timestamptz NOT NULL,
    CONSTRAINT ck_orders_amounts CHECK (amount_minor >= 0 AND returned_minor >= 0)
);
CREATE INDEX ix_orders_customer_id ON orders (customer_id);
CREATE TABLE order_returns (
    return_id text PRIMARY KEY,
    order_id text NOT NULL,
    refunded_minor bigint NOT NULL,
    currency text NOT NULL,
    returned_at timestamptz NOT NULL,
    CONSTRAINT ck_order_returns_amount CHECK (refunded_minor >= 0)
);
CREATE INDEX ix_order_returns_order_id ON order_returns (order_id);
CREATE TABLE held_reports (
    trigger_ref text PRIMARY KEY,
    order_id text NOT NULL,
    customer_id text NOT NULL,
    merchant_id text NOT NULL,
    promise_kind text NOT NULL,
    measured_value bigint NOT NULL,
    measured_unit text NOT NULL,
    trigger text NOT NULL,
    claim_id uuid,
    at timestamptz NOT NULL,
    arrival bigint GENERATED ALWAYS AS IDENTITY,
    CONSTRAINT ck_held_reports_trigger CHECK (trigger IN ('incident', 'claim'))
);
CREATE INDEX ix_held_reports_order_id ON held_reports (order_id);
ALTER TABLE guarantee_policies
    ADD COLUMN self_reported_max_tier integer NOT NULL DEFAULT 1;
ALTER TABLE guarantee_policies ADD CONSTRAINT ck_guarantee_policies_self_reported_tier
    CHECK (self_reported_max_tier >= 0);
ALTER TABLE reward_definitions ADD COLUMN value_minor bigint;
ALTER TABLE reward_definitions ADD COLUMN currency text;
ALTER TABLE reward_definitions ADD CONSTRAINT ck_reward_definitions_value CHECK (
    (value_minor IS NULL) = (currency IS NULL) AND coalesce(value_minor, 0) >= 0);
UPDATE reward_definitions SET value_minor = 800, currency = 'EUR'
    WHERE reward_code = 'fruit-plate';
ALTER TABLE merchant_limits ADD COLUMN customer_points_cap bigint;
ALTER TABLE merchant_limits ADD COLUMN merchant_monthly_points_budget bigint;
ALTER TABLE merchant_limits ADD CONSTRAINT ck_merchant_limits_points_not_negative CHECK (
    coalesce(customer_points_cap, 0) >= 0 AND coalesce(merchant_monthly_points_budget, 0) >= 0);
INSERT INTO merchant_limits (merchant_id, customer_refund_cap_minor, customer_breach_cap,
    merchant_monthly_budget_minor, customer_points_cap, merchant_monthly_points_budget)
    VALUES ('*', 10000, 5, 500000, 5000, 250000)
    ON CONFLICT (merchant_id) DO UPDATE SET
        customer_refund_cap_minor = coalesce(
            merchant_limits.customer_refund_cap_minor, excluded.customer_refund_cap_minor),
        customer_breach_cap = coalesce(
            merchant_limits.customer_breach_cap, excluded.customer_breach_cap),
        merchant_monthly_budget_minor = coalesce(
            merchant_limits.merchant_monthly_budget_minor, excluded.merchant_monthly_budget_minor),
        customer_points_cap = excluded.customer_points_cap,
        merchant_monthly_points_budget = excluded.merchant_monthly_points_budget;
ALTER TABLE compensations ADD COLUMN voucher_value_minor bigint NOT NULL DEFAULT 0;
ALTER TABLE compensations ADD COLUMN escalated_at timestamptz;
ALTER TABLE compensations ADD COLUMN overdue_at timestamptz;
ALTER TABLE compensations ADD COLUMN decision_note text;
CREATE INDEX ix_compensations_held_unmarked ON compensations (created_at)
    WHERE status = 'in_review' AND (escalated_at IS NULL OR overdue_at IS NULL);
ALTER TABLE guarantee_claims ADD COLUMN overdue_at timestamptz;
ALTER TABLE guarantee_claims ALTER COLUMN order_amount_minor DROP NOT NULL;
ALTER TABLE guarantee_claims ALTER COLUMN currency DROP NOT NULL;
CREATE INDEX ix_guarantee_claims_undecided_unmarked ON guarantee_claims (filed_at)
    WHERE status = 'in_review' AND (escalated_at IS NULL OR overdue_at IS NULL)
"""

DOWNGRADE = """
DROP INDEX ix_guarantee_claims_undecided_unmarked;
ALTER TABLE guarantee_claims DROP COLUMN overdue_at;
DROP INDEX ix_compensations_held_unmarked;
ALTER TABLE compensations DROP COLUMN decision_note, DROP COLUMN overdue_at,
    DROP COLUMN escalated_at, DROP COLUMN voucher_value_minor;
DELETE FROM merchant_limits WHERE merchant_id = '*';
ALTER TABLE merchant_limits DROP CONSTRAINT ck_merchant_limits_points_not_negative;
ALTER TABLE merchant_limits DROP COLUMN merchant_monthly_points_budget,
    DROP COLUMN customer_points_cap;
ALTER TABLE reward_definitions DROP CONSTRAINT ck_reward_definitions_value;
ALTER TABLE reward_definitions DROP COLUMN currency, DROP COLUMN value_minor;
ALTER TABLE guarantee_policies DROP CONSTRAINT ck_guarantee_policies_self_reported_tier;
ALTER TABLE guarantee_policies DROP COLUMN self_reported_max_tier;
DROP TABLE held_reports, order_returns, orders
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
