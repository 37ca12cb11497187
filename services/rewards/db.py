"""Tables of the rewards database (the migration `rewards_0002` creates them, with the
constraints listed there; these declarations are what queries are written against).

What the database itself guarantees, so no code path can break it:
- one breach row per (order, promise) and one compensation per (breach, tier): whatever
  order incidents and claims arrive in, a breach is paid once and topped up once per tier;
- one voucher per origin reference (`origin_ref` unique), so a replayed cause never
  issues a second voucher; codes are unique; a voucher is never both redeemed and expired;
- `catalogue_items.units_claimed <= total_stock` (and within the budget), so no race can
  oversell an item;
- a catalogue claim is `issued` exactly when it has a voucher;
- one row per (customer, milestone occurrence), one referrer per customer;
- one referral programme row (rewards_0003), each side paid a voucher or points;
- `settled_points` never negative; one row per redemption the points service gave back
  (rewards_0005).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from shared.db import new_metadata

metadata = new_metadata()
TZ = sa.DateTime(timezone=True)

customers = sa.Table(
    "customers",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("available", sa.BigInteger, nullable=False),
    sa.Column("pending", sa.BigInteger, nullable=False),
    sa.Column("lifetime_points", sa.BigInteger, nullable=False),
    sa.Column("tier", sa.Text, nullable=False),
    sa.Column("purchase_count", sa.Integer, nullable=False),
    sa.Column("first_purchase_at", TZ),
    sa.Column("referral_code", sa.Text),
    sa.Column("updated_at", TZ, nullable=False, server_default=sa.func.now()),
    sa.Column("settled_points", sa.BigInteger, nullable=False, server_default="0"),
)

customer_orders = sa.Table(
    "customer_orders",
    metadata,
    sa.Column("order_id", sa.Text, primary_key=True),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("merchant_id", sa.Text, nullable=False),
    sa.Column("ordered_at", TZ, nullable=False),
)

reward_definitions = sa.Table(
    "reward_definitions",
    metadata,
    sa.Column("reward_code", sa.Text, primary_key=True),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("valid_days", sa.Integer, nullable=False),
    sa.Column("merchant_id", sa.Text),
    sa.Column("value_minor", sa.BigInteger),  # rewards_0004: what a voucher is worth
    sa.Column("currency", sa.Text),
)

guarantee_policies = sa.Table(
    "guarantee_policies",
    metadata,
    sa.Column("merchant_id", sa.Text, primary_key=True),
    sa.Column("promise_kind", sa.Text, primary_key=True),
    sa.Column("unit", sa.Text, nullable=False),
    sa.Column("tiers", pg.JSONB, nullable=False),
    sa.Column("claim_window_days", sa.Integer, nullable=False),
    sa.Column("updated_at", TZ, nullable=False, server_default=sa.func.now()),
    sa.Column("self_reported_max_tier", sa.Integer, nullable=False, server_default="1"),
)

merchant_limits = sa.Table(
    "merchant_limits",
    metadata,
    sa.Column("merchant_id", sa.Text, primary_key=True),
    sa.Column("customer_refund_cap_minor", sa.BigInteger),
    sa.Column("customer_breach_cap", sa.Integer),
    sa.Column("merchant_monthly_budget_minor", sa.BigInteger),
    sa.Column("customer_points_cap", sa.BigInteger),
    sa.Column("merchant_monthly_points_budget", sa.BigInteger),
)

breaches = sa.Table(
    "breaches",
    metadata,
    sa.Column("breach_key", sa.Text, primary_key=True),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("merchant_id", sa.Text, nullable=False),
    sa.Column("order_id", sa.Text, nullable=False),
    sa.Column("promise_kind", sa.Text, nullable=False),
    sa.Column("currency", sa.Text, nullable=False),
    sa.Column("order_amount_minor", sa.BigInteger, nullable=False),
    sa.Column("worst_value", sa.BigInteger, nullable=False),
    sa.Column("worst_unit", sa.Text, nullable=False),
    sa.Column("tier", sa.Integer, nullable=False),
    sa.Column("vouchers", pg.ARRAY(sa.Text), nullable=False),
    sa.Column("points", sa.BigInteger, nullable=False),
    sa.Column("refund_minor", sa.BigInteger, nullable=False),
    sa.Column("first_seen_at", TZ, nullable=False),
    sa.Column("updated_at", TZ, nullable=False),
)

compensations = sa.Table(
    "compensations",
    metadata,
    sa.Column("compensation_id", pg.UUID(as_uuid=True), primary_key=True),
    sa.Column("breach_key", sa.Text, nullable=False),
    sa.Column("tier", sa.Integer, nullable=False),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("merchant_id", sa.Text, nullable=False),
    sa.Column("order_id", sa.Text, nullable=False),
    sa.Column("promise_kind", sa.Text, nullable=False),
    sa.Column("vouchers", pg.ARRAY(sa.Text), nullable=False),
    sa.Column("points", sa.BigInteger, nullable=False),
    sa.Column("refund_minor", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.Text, nullable=False),
    sa.Column("new_breach", sa.Boolean, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("trigger", sa.Text, nullable=False),
    sa.Column("trigger_ref", sa.Text, nullable=False),
    sa.Column("review_reasons", pg.ARRAY(sa.Text), nullable=False),
    sa.Column("created_at", TZ, nullable=False),
    sa.Column("decided_at", TZ),
    sa.Column("decided_by", sa.Text),
    sa.Column("voucher_value_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("escalated_at", TZ),
    sa.Column("overdue_at", TZ),
    sa.Column("decision_note", sa.Text),
)

guarantee_claims = sa.Table(
    "guarantee_claims",
    metadata,
    sa.Column("claim_id", pg.UUID(as_uuid=True), primary_key=True),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("merchant_id", sa.Text, nullable=False),
    sa.Column("order_id", sa.Text, nullable=False),
    sa.Column("promise_kind", sa.Text, nullable=False),
    sa.Column("measured_value", sa.BigInteger, nullable=False),
    sa.Column("measured_unit", sa.Text, nullable=False),
    sa.Column("order_amount_minor", sa.BigInteger),
    sa.Column("currency", sa.Text),
    sa.Column("filed_at", TZ, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("explanation", sa.Text),
    sa.Column("compensation_id", pg.UUID(as_uuid=True)),
    sa.Column("decided_at", TZ),
    sa.Column("escalated_at", TZ),
    sa.Column("overdue_at", TZ),
)

vouchers = sa.Table(
    "vouchers",
    metadata,
    sa.Column("voucher_id", pg.UUID(as_uuid=True), primary_key=True),
    sa.Column("code", sa.Text, nullable=False),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("reward_code", sa.Text, nullable=False),
    sa.Column("origin", sa.Text, nullable=False),
    sa.Column("origin_ref", sa.Text, nullable=False),
    sa.Column("merchant_id", sa.Text),
    sa.Column("issued_at", TZ, nullable=False),
    sa.Column("expires_at", TZ, nullable=False),
    sa.Column("redeemed_at", TZ),
    sa.Column("redeemed_by", sa.Text),
    sa.Column("redeemed_store", sa.Text),
    sa.Column("expired_at", TZ),
)

catalogue_items = sa.Table(
    "catalogue_items",
    metadata,
    sa.Column("item_id", sa.Text, primary_key=True),
    sa.Column("reward_code", sa.Text, nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("points_cost", sa.BigInteger, nullable=False),
    sa.Column("claimable_from", TZ, nullable=False),
    sa.Column("claimable_until", TZ, nullable=False),
    sa.Column("voucher_valid_days", sa.Integer, nullable=False),
    sa.Column("total_stock", sa.Integer),
    sa.Column("budget_minor", sa.BigInteger),
    sa.Column("unit_cost_minor", sa.BigInteger, nullable=False),
    sa.Column("per_customer_limit", sa.Integer),
    sa.Column("eligible_tiers", pg.ARRAY(sa.Text), nullable=False),
    sa.Column("merchant_id", sa.Text),
    sa.Column("units_claimed", sa.Integer, nullable=False),
)

catalogue_claims = sa.Table(
    "catalogue_claims",
    metadata,
    sa.Column("claim_id", pg.UUID(as_uuid=True), primary_key=True),
    sa.Column("item_id", sa.Text, nullable=False),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("points", sa.BigInteger, nullable=False),
    sa.Column("merchant_id", sa.Text, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("voucher_id", pg.UUID(as_uuid=True)),
    sa.Column("idempotency_key", sa.Text),
    sa.Column("created_at", TZ, nullable=False),
    sa.Column("updated_at", TZ, nullable=False),
    sa.Column("redemption_id", sa.Text),
)

returned_redemptions = sa.Table(
    "returned_redemptions",
    metadata,
    sa.Column("redemption_id", sa.Text, primary_key=True),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("merchant_id", sa.Text, nullable=False),
    sa.Column("points", sa.BigInteger, nullable=False),
    sa.Column("returned_at", TZ, nullable=False),
)

milestone_rules = sa.Table(
    "milestone_rules",
    metadata,
    sa.Column("rule_key", sa.Text, primary_key=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("every_points", sa.BigInteger),
    sa.Column("tier", sa.Text),
    sa.Column("grant_reward_code", sa.Text),
    sa.Column("grant_points", sa.BigInteger),
    sa.Column("active", sa.Boolean, nullable=False),
)

milestones_reached = sa.Table(
    "milestones_reached",
    metadata,
    sa.Column("idempotency_key", sa.Text, primary_key=True),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("rule_key", sa.Text, nullable=False),
    sa.Column("occurrence", sa.Integer, nullable=False),
    sa.Column("reached_at", TZ, nullable=False),
)

referrals = sa.Table(
    "referrals",
    metadata,
    sa.Column("referee_id", sa.Text, primary_key=True),
    sa.Column("referrer_id", sa.Text, nullable=False),
    sa.Column("recorded_at", TZ, nullable=False),
    sa.Column("rewarded_at", TZ),
)

referral_programme = sa.Table(
    "referral_programme",
    metadata,
    sa.Column("programme_id", sa.Integer, primary_key=True),
    sa.Column("referrer_reward_code", sa.Text),
    sa.Column("referrer_points", sa.BigInteger),
    sa.Column("referee_reward_code", sa.Text),
    sa.Column("referee_points", sa.BigInteger),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("updated_at", TZ, nullable=False, server_default=sa.func.now()),
)

# rewards_0004: the orders this service saw on pos.purchases, and reports waiting for them.
orders = sa.Table(
    "orders",
    metadata,
    sa.Column("order_id", sa.Text, primary_key=True),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("merchant_id", sa.Text, nullable=False),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Column("returned_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("currency", sa.Text, nullable=False),
    sa.Column("ordered_at", TZ, nullable=False),
)

order_returns = sa.Table(
    "order_returns",
    metadata,
    sa.Column("return_id", sa.Text, primary_key=True),
    sa.Column("order_id", sa.Text, nullable=False),
    sa.Column("refunded_minor", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.Text, nullable=False),
    sa.Column("returned_at", TZ, nullable=False),
)

held_reports = sa.Table(
    "held_reports",
    metadata,
    sa.Column("trigger_ref", sa.Text, primary_key=True),
    sa.Column("order_id", sa.Text, nullable=False),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("merchant_id", sa.Text, nullable=False),
    sa.Column("promise_kind", sa.Text, nullable=False),
    sa.Column("measured_value", sa.BigInteger, nullable=False),
    sa.Column("measured_unit", sa.Text, nullable=False),
    sa.Column("trigger", sa.Text, nullable=False),
    sa.Column("claim_id", pg.UUID(as_uuid=True)),
    sa.Column("at", TZ, nullable=False),
    sa.Column("arrival", sa.BigInteger, sa.Identity()),  # released in the order they came
)
