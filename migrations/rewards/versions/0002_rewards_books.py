"""Rewards books: projection, guarantee policies and compensations, vouchers, catalogue saga,
milestones and referrals.

Revision ID: rewards_0002
Revises: rewards_0001
Create Date: 2026-11-24

Invariants the database enforces (see services/rewards/db.py for the why):
- one breach per (order, promise) and one compensation per (breach, tier): a breach is
  paid once, a top-up once per tier reached;
- one voucher per origin reference (compensation line, claim, milestone, referral side)
  and unique codes; a voucher is redeemed at most once (redeemed_at set once, by a
  conditional update) and never both redeemed and expired;
- catalogue stock: units_claimed never exceeds total_stock;
- once per customer per milestone occurrence; one referrer per customer.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "rewards_0002"
down_revision: str | None = "rewards_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = """
CREATE TABLE customers (
    customer_id text PRIMARY KEY,
    available bigint NOT NULL DEFAULT 0,
    pending bigint NOT NULL DEFAULT 0,
    lifetime_points bigint NOT NULL DEFAULT 0,
    tier text NOT NULL DEFAULT 'member',
    purchase_count integer NOT NULL DEFAULT 0,
    first_purchase_at timestamptz,
    referral_code text,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT uq_customers_referral_code UNIQUE (referral_code),
    CONSTRAINT ck_customers_purchase_count_not_negative CHECK (purchase_count >= 0)
);

CREATE TABLE customer_orders (
    order_id text PRIMARY KEY,
    customer_id text NOT NULL,
    merchant_id text NOT NULL,
    ordered_at timestamptz NOT NULL
);
CREATE INDEX ix_customer_orders_customer_id ON customer_orders (customer_id);

CREATE TABLE reward_definitions (
    reward_code text PRIMARY KEY,
    title text NOT NULL,
    valid_days integer NOT NULL,
    merchant_id text,
    CONSTRAINT ck_reward_definitions_valid_days_positive CHECK (valid_days > 0)
);

CREATE TABLE guarantee_policies (
    merchant_id text NOT NULL,
    promise_kind text NOT NULL,
    unit text NOT NULL,
    tiers jsonb NOT NULL,
    claim_window_days integer NOT NULL DEFAULT 7,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pk_guarantee_policies PRIMARY KEY (merchant_id, promise_kind),
    CONSTRAINT ck_guarantee_policies_unit_known CHECK (unit IN ('minutes', 'seconds', 'breach')),
    CONSTRAINT ck_guarantee_policies_window_positive CHECK (claim_window_days > 0)
);

CREATE TABLE merchant_limits (
    merchant_id text PRIMARY KEY,
    customer_refund_cap_minor bigint,
    customer_breach_cap integer,
    merchant_monthly_budget_minor bigint,
    CONSTRAINT ck_merchant_limits_not_negative CHECK (
        coalesce(customer_refund_cap_minor, 0) >= 0 AND coalesce(customer_breach_cap, 0) >= 0
        AND coalesce(merchant_monthly_budget_minor, 0) >= 0)
);

CREATE TABLE breaches (
    breach_key text PRIMARY KEY,
    customer_id text NOT NULL,
    merchant_id text NOT NULL,
    order_id text NOT NULL,
    promise_kind text NOT NULL,
    currency text NOT NULL,
    order_amount_minor bigint NOT NULL,
    worst_value bigint NOT NULL,
    worst_unit text NOT NULL,
    tier integer NOT NULL DEFAULT 0,
    vouchers text[] NOT NULL DEFAULT '{}',
    points bigint NOT NULL DEFAULT 0,
    refund_minor bigint NOT NULL DEFAULT 0,
    first_seen_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    CONSTRAINT uq_breaches_order_id UNIQUE (order_id, promise_kind),
    CONSTRAINT ck_breaches_amounts_not_negative CHECK (
        order_amount_minor >= 0 AND points >= 0 AND refund_minor >= 0 AND tier >= 0)
);

CREATE TABLE compensations (
    compensation_id uuid PRIMARY KEY,
    breach_key text NOT NULL REFERENCES breaches (breach_key),
    tier integer NOT NULL,
    customer_id text NOT NULL,
    merchant_id text NOT NULL,
    order_id text NOT NULL,
    promise_kind text NOT NULL,
    vouchers text[] NOT NULL DEFAULT '{}',
    points bigint NOT NULL DEFAULT 0,
    refund_minor bigint NOT NULL DEFAULT 0,
    currency text NOT NULL,
    new_breach boolean NOT NULL,
    status text NOT NULL,
    trigger text NOT NULL,
    trigger_ref text NOT NULL,
    review_reasons text[] NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL,
    decided_at timestamptz,
    decided_by text,
    CONSTRAINT uq_compensations_breach_key UNIQUE (breach_key, tier),
    CONSTRAINT ck_compensations_status_known CHECK (status IN ('granted', 'in_review', 'rejected')),
    CONSTRAINT ck_compensations_decided CHECK ((status = 'in_review') = (decided_at IS NULL)),
    CONSTRAINT ck_compensations_amounts CHECK (points >= 0 AND refund_minor >= 0 AND tier >= 1)
);
CREATE INDEX ix_compensations_customer_granted ON compensations (customer_id, decided_at)
    WHERE status = 'granted';
CREATE INDEX ix_compensations_merchant_granted ON compensations (merchant_id, decided_at)
    WHERE status = 'granted';
CREATE INDEX ix_compensations_in_review ON compensations (created_at)
    WHERE status = 'in_review';

CREATE TABLE guarantee_claims (
    claim_id uuid PRIMARY KEY,
    customer_id text NOT NULL,
    merchant_id text NOT NULL,
    order_id text NOT NULL,
    promise_kind text NOT NULL,
    measured_value bigint NOT NULL,
    measured_unit text NOT NULL,
    order_amount_minor bigint NOT NULL,
    currency text NOT NULL,
    filed_at timestamptz NOT NULL,
    status text NOT NULL,
    reason text,
    explanation text,
    compensation_id uuid REFERENCES compensations (compensation_id),
    decided_at timestamptz,
    escalated_at timestamptz,
    CONSTRAINT ck_guarantee_claims_status_known CHECK (
        status IN ('granted', 'rejected', 'in_review', 'nothing_owed')),
    CONSTRAINT ck_guarantee_claims_decided CHECK ((status = 'in_review') = (decided_at IS NULL))
);
CREATE INDEX ix_guarantee_claims_customer_id ON guarantee_claims (customer_id);
CREATE INDEX ix_guarantee_claims_undecided ON guarantee_claims (filed_at)
    WHERE status = 'in_review';

CREATE TABLE vouchers (
    voucher_id uuid PRIMARY KEY,
    code text NOT NULL,
    customer_id text NOT NULL,
    reward_code text NOT NULL,
    origin text NOT NULL,
    origin_ref text NOT NULL,
    merchant_id text,
    issued_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    redeemed_at timestamptz,
    redeemed_by text,
    redeemed_store text,
    expired_at timestamptz,
    CONSTRAINT uq_vouchers_code UNIQUE (code),
    CONSTRAINT uq_vouchers_origin_ref UNIQUE (origin_ref),
    CONSTRAINT ck_vouchers_origin_known CHECK (
        origin IN ('guarantee', 'catalogue', 'milestone', 'referral')),
    CONSTRAINT ck_vouchers_dates CHECK (expires_at > issued_at),
    CONSTRAINT ck_vouchers_redeemed_or_expired CHECK (redeemed_at IS NULL OR expired_at IS NULL),
    CONSTRAINT ck_vouchers_redeemed_by CHECK ((redeemed_at IS NULL) = (redeemed_by IS NULL))
);
CREATE INDEX ix_vouchers_customer_id ON vouchers (customer_id);
CREATE INDEX ix_vouchers_due_expiry ON vouchers (expires_at)
    WHERE redeemed_at IS NULL AND expired_at IS NULL;

CREATE TABLE catalogue_items (
    item_id text PRIMARY KEY,
    reward_code text NOT NULL,
    title text NOT NULL,
    points_cost bigint NOT NULL,
    claimable_from timestamptz NOT NULL,
    claimable_until timestamptz NOT NULL,
    voucher_valid_days integer NOT NULL,
    total_stock integer,
    budget_minor bigint,
    unit_cost_minor bigint NOT NULL DEFAULT 0,
    per_customer_limit integer,
    eligible_tiers text[] NOT NULL DEFAULT '{}',
    merchant_id text,
    units_claimed integer NOT NULL DEFAULT 0,
    CONSTRAINT ck_catalogue_items_cost_positive CHECK (points_cost > 0),
    CONSTRAINT ck_catalogue_items_stock CHECK (
        units_claimed >= 0 AND (total_stock IS NULL OR units_claimed <= total_stock)),
    CONSTRAINT ck_catalogue_items_budget CHECK (
        budget_minor IS NULL OR units_claimed * unit_cost_minor <= budget_minor)
);

CREATE TABLE catalogue_claims (
    claim_id uuid PRIMARY KEY,
    item_id text NOT NULL REFERENCES catalogue_items (item_id),
    customer_id text NOT NULL,
    points bigint NOT NULL,
    merchant_id text NOT NULL,
    state text NOT NULL,
    reason text,
    voucher_id uuid REFERENCES vouchers (voucher_id),
    idempotency_key text,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    CONSTRAINT uq_catalogue_claims_customer_id UNIQUE (customer_id, idempotency_key),
    CONSTRAINT ck_catalogue_claims_state_known CHECK (state IN (
        'requested', 'points_debited', 'issued', 'rejected', 'cancelled', 'compensated')),
    CONSTRAINT ck_catalogue_claims_issued_has_voucher CHECK (
        (state = 'issued') = (voucher_id IS NOT NULL))
);
CREATE INDEX ix_catalogue_claims_item_customer ON catalogue_claims (item_id, customer_id);
CREATE INDEX ix_catalogue_claims_unsettled ON catalogue_claims (updated_at)
    WHERE state IN ('requested', 'points_debited', 'cancelled');

CREATE TABLE milestone_rules (
    rule_key text PRIMARY KEY,
    kind text NOT NULL,
    every_points bigint,
    tier text,
    grant_reward_code text,
    grant_points bigint,
    active boolean NOT NULL DEFAULT true,
    CONSTRAINT ck_milestone_rules_kind CHECK (
        (kind = 'every_lifetime_points' AND every_points > 0 AND tier IS NULL)
        OR (kind = 'tier_reached' AND tier IS NOT NULL AND every_points IS NULL)),
    CONSTRAINT ck_milestone_rules_one_grant CHECK (
        (grant_reward_code IS NULL) <> (grant_points IS NULL))
);

CREATE TABLE milestones_reached (
    idempotency_key text PRIMARY KEY,
    customer_id text NOT NULL,
    rule_key text NOT NULL,
    occurrence integer NOT NULL,
    reached_at timestamptz NOT NULL
);

CREATE TABLE referrals (
    referee_id text PRIMARY KEY,
    referrer_id text NOT NULL,
    recorded_at timestamptz NOT NULL,
    rewarded_at timestamptz,
    CONSTRAINT ck_referrals_not_self CHECK (referrer_id <> referee_id)
);
CREATE INDEX ix_referrals_referrer_id ON referrals (referrer_id);
"""

SEED = """
INSERT INTO reward_definitions (reward_code, title, valid_days) VALUES
    ('fruit-plate', 'A free fruit plate', 30);
INSERT INTO guarantee_policies (merchant_id, promise_kind, unit, tiers, claim_window_days) VALUES
    ('hotel-restaurant', 'dish_wait_time', 'minutes',
     '[{"over": 10, "vouchers": ["fruit-plate"]},
       {"over": 15, "refund_basis_points": 2000},
       {"over": 20, "refund_basis_points": 20000}]'::jsonb, 7);
"""

DROP = """
DROP TABLE referrals, milestones_reached, milestone_rules, catalogue_claims, catalogue_items,
    vouchers, guarantee_claims, compensations, breaches, merchant_limits, guarantee_policies,
    reward_definitions, customer_orders, customers;
"""


def _run(script: str) -> None:
    # One statement at a time: asyncpg prepares each, and a prepared statement holds one.
    for statement in script.split(";\n"):
        if statement.strip():
            op.execute(statement)


def upgrade() -> None:
    _run(TABLES)
    _run(SEED)


def downgrade() -> None:
    _run(DROP)
