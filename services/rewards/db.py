"""Tables of the rewards database, as its migrations build them: columns, defaults,
indexes and every constraint (tests/integration/rewards/test_schema.py fails on any
difference, so a change here needs its migration and the other way round).

What the database itself guarantees, so no code path can break it:
- one breach row per (order, promise) (its key is derived from the pair) and one
  compensation per (breach, tier): whatever order incidents and claims arrive in, a
  breach is paid once and topped up once per tier;
- one voucher per origin reference (`origin_ref` unique), so a replayed cause never
  issues a second voucher; codes are unique; a voucher is never both redeemed and expired;
- `catalogue_items.units_claimed <= total_stock` (and within the budget), so no race can
  oversell an item;
- a catalogue claim is `issued` exactly when it has a voucher;
- one row per (customer, milestone occurrence), one referrer per customer;
- one referral programme row (rewards_0003), each side paid a voucher or points;
- `settled_points` never negative; one row per redemption the points service gave back
  (rewards_0005);
- `config_version` goes up in the transaction of every write to `guarantee_policies`,
  `merchant_limits` or `reward_definitions` (a statement trigger on each, rewards_0007), so
  a cache of them checked against it is never stale;
- `merchant_month_grants` holds each merchant's granted money and points per UTC month,
  moved in the transaction of every write to `compensations` (statement triggers with
  transition tables, rewards_0008), so the budget caps read one row, never a stale sum.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from shared.db import new_metadata


def among(column: sa.ColumnElement[Any], values: Iterable[Any]) -> sa.ColumnElement[bool]:
    """`column = ANY(:array)`: one bound array, not one parameter per value.

    An IN of a batch's worth of ids renders a placeholder per id, so every batch size is
    a new statement for SQLAlchemy to compile and for PostgreSQL to parse and plan; one
    array parameter keeps the statement the same and cached (`python -m bench rewards`).
    """
    array = pg.ARRAY(column.type)
    return column == sa.any_(sa.cast(sa.bindparam(None, list(values), type_=array), array))


metadata = new_metadata()
TZ = sa.DateTime(timezone=True)

customers = sa.Table(
    "customers",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("available", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("pending", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("lifetime_points", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("tier", sa.Text, nullable=False, server_default="member"),
    sa.Column("purchase_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("first_purchase_at", TZ),
    sa.Column("referral_code", sa.Text, unique=True),
    sa.Column("updated_at", TZ, nullable=False, server_default=sa.func.now()),
    sa.Column("settled_points", sa.BigInteger, nullable=False, server_default="0"),
    sa.CheckConstraint("purchase_count >= 0", name="purchase_count_not_negative"),
    sa.CheckConstraint("settled_points >= 0", name="settled_points_not_negative"),
)

customer_orders = sa.Table(
    "customer_orders",
    metadata,
    sa.Column("order_id", sa.Text, primary_key=True),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("merchant_id", sa.Text, nullable=False),
    sa.Column("ordered_at", TZ, nullable=False),
    sa.Index("ix_customer_orders_customer_id", "customer_id"),
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
    sa.CheckConstraint("valid_days > 0", name="valid_days_positive"),
    sa.CheckConstraint(
        "(value_minor IS NULL) = (currency IS NULL) AND coalesce(value_minor, 0) >= 0",
        name="value",
    ),
)

guarantee_policies = sa.Table(
    "guarantee_policies",
    metadata,
    sa.Column("merchant_id", sa.Text, primary_key=True),
    sa.Column("promise_kind", sa.Text, primary_key=True),
    sa.Column("unit", sa.Text, nullable=False),
    sa.Column("tiers", pg.JSONB, nullable=False),
    sa.Column("claim_window_days", sa.Integer, nullable=False, server_default="7"),
    sa.Column("updated_at", TZ, nullable=False, server_default=sa.func.now()),
    sa.Column("self_reported_max_tier", sa.Integer, nullable=False, server_default="1"),
    sa.CheckConstraint("unit IN ('minutes', 'seconds', 'breach')", name="unit_known"),
    sa.CheckConstraint("claim_window_days > 0", name="window_positive"),
    sa.CheckConstraint("self_reported_max_tier >= 0", name="self_reported_tier"),
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
    sa.CheckConstraint(
        "coalesce(customer_refund_cap_minor, 0) >= 0 AND coalesce(customer_breach_cap, 0) >= 0"
        " AND coalesce(merchant_monthly_budget_minor, 0) >= 0",
        name="not_negative",
    ),
    sa.CheckConstraint(
        "coalesce(customer_points_cap, 0) >= 0"
        " AND coalesce(merchant_monthly_points_budget, 0) >= 0",
        name="points_not_negative",
    ),
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
    sa.Column("tier", sa.Integer, nullable=False, server_default="0"),
    sa.Column("vouchers", pg.ARRAY(sa.Text), nullable=False, server_default="{}"),
    sa.Column("points", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("refund_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("first_seen_at", TZ, nullable=False),
    sa.Column("updated_at", TZ, nullable=False),
    # (order_id, promise_kind) is unique through the key, derived from exactly that pair
    # (`domain.guarantee.breach_key`); rewards_0007 dropped the second index that said so.
    sa.CheckConstraint(
        "order_amount_minor >= 0 AND points >= 0 AND refund_minor >= 0 AND tier >= 0",
        name="amounts_not_negative",
    ),
)

compensations = sa.Table(
    "compensations",
    metadata,
    sa.Column("compensation_id", pg.UUID(as_uuid=True), primary_key=True),
    sa.Column("breach_key", sa.Text, sa.ForeignKey("breaches.breach_key"), nullable=False),
    sa.Column("tier", sa.Integer, nullable=False),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("merchant_id", sa.Text, nullable=False),
    sa.Column("order_id", sa.Text, nullable=False),
    sa.Column("promise_kind", sa.Text, nullable=False),
    sa.Column("vouchers", pg.ARRAY(sa.Text), nullable=False, server_default="{}"),
    sa.Column("points", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("refund_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("currency", sa.Text, nullable=False),
    sa.Column("new_breach", sa.Boolean, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("trigger", sa.Text, nullable=False),
    sa.Column("trigger_ref", sa.Text, nullable=False),
    sa.Column("review_reasons", pg.ARRAY(sa.Text), nullable=False, server_default="{}"),
    sa.Column("created_at", TZ, nullable=False),
    sa.Column("decided_at", TZ),
    sa.Column("decided_by", sa.Text),
    sa.Column("voucher_value_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("escalated_at", TZ),
    sa.Column("overdue_at", TZ),
    sa.Column("decision_note", sa.Text),
    sa.UniqueConstraint("breach_key", "tier"),
    sa.CheckConstraint("status IN ('granted', 'in_review', 'rejected')", name="status_known"),
    sa.CheckConstraint("(status = 'in_review') = (decided_at IS NULL)", name="decided"),
    sa.CheckConstraint("points >= 0 AND refund_minor >= 0 AND tier >= 1", name="amounts"),
    sa.Index(
        "ix_compensations_customer_granted",
        "customer_id",
        "decided_at",
        postgresql_where=sa.text("status = 'granted'"),
    ),
    sa.Index(
        "ix_compensations_merchant_granted",
        "merchant_id",
        "decided_at",
        postgresql_where=sa.text("status = 'granted'"),
    ),
    sa.Index(
        "ix_compensations_in_review", "created_at", postgresql_where=sa.text("status = 'in_review'")
    ),
    sa.Index(
        "ix_compensations_held_unmarked",
        "created_at",
        postgresql_where=sa.text(
            "status = 'in_review' AND (escalated_at IS NULL OR overdue_at IS NULL)"
        ),
    ),
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
    sa.Column(
        "compensation_id", pg.UUID(as_uuid=True), sa.ForeignKey("compensations.compensation_id")
    ),
    sa.Column("decided_at", TZ),
    sa.Column("escalated_at", TZ),
    sa.Column("overdue_at", TZ),
    sa.CheckConstraint(
        "status IN ('granted', 'rejected', 'in_review', 'nothing_owed')", name="status_known"
    ),
    sa.CheckConstraint("(status = 'in_review') = (decided_at IS NULL)", name="decided"),
    sa.Index("ix_guarantee_claims_customer_id", "customer_id"),
    sa.Index(
        "ix_guarantee_claims_undecided",
        "filed_at",
        postgresql_where=sa.text("status = 'in_review'"),
    ),
    sa.Index(
        "ix_guarantee_claims_undecided_unmarked",
        "filed_at",
        postgresql_where=sa.text(
            "status = 'in_review' AND (escalated_at IS NULL OR overdue_at IS NULL)"
        ),
    ),
)

vouchers = sa.Table(
    "vouchers",
    metadata,
    sa.Column("voucher_id", pg.UUID(as_uuid=True), primary_key=True),
    sa.Column("code", sa.Text, nullable=False, unique=True),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("reward_code", sa.Text, nullable=False),
    sa.Column("origin", sa.Text, nullable=False),
    sa.Column("origin_ref", sa.Text, nullable=False, unique=True),
    sa.Column("merchant_id", sa.Text),
    sa.Column("issued_at", TZ, nullable=False),
    sa.Column("expires_at", TZ, nullable=False),
    sa.Column("redeemed_at", TZ),
    sa.Column("redeemed_by", sa.Text),
    sa.Column("redeemed_store", sa.Text),
    sa.Column("expired_at", TZ),
    sa.CheckConstraint(
        "origin IN ('guarantee', 'catalogue', 'milestone', 'referral')", name="origin_known"
    ),
    sa.CheckConstraint("expires_at > issued_at", name="dates"),
    sa.CheckConstraint("redeemed_at IS NULL OR expired_at IS NULL", name="redeemed_or_expired"),
    sa.CheckConstraint("(redeemed_at IS NULL) = (redeemed_by IS NULL)", name="redeemed_by"),
    sa.Index("ix_vouchers_customer_id", "customer_id"),
    sa.Index(
        "ix_vouchers_due_expiry",
        "expires_at",
        postgresql_where=sa.text("redeemed_at IS NULL AND expired_at IS NULL"),
    ),
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
    sa.Column("unit_cost_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("per_customer_limit", sa.Integer),
    sa.Column("eligible_tiers", pg.ARRAY(sa.Text), nullable=False, server_default="{}"),
    sa.Column("merchant_id", sa.Text),
    sa.Column("units_claimed", sa.Integer, nullable=False, server_default="0"),
    sa.CheckConstraint("points_cost > 0", name="cost_positive"),
    sa.CheckConstraint(
        "units_claimed >= 0 AND (total_stock IS NULL OR units_claimed <= total_stock)",
        name="stock",
    ),
    sa.CheckConstraint(
        "budget_minor IS NULL OR units_claimed * unit_cost_minor <= budget_minor", name="budget"
    ),
)

catalogue_claims = sa.Table(
    "catalogue_claims",
    metadata,
    sa.Column("claim_id", pg.UUID(as_uuid=True), primary_key=True),
    sa.Column("item_id", sa.Text, sa.ForeignKey("catalogue_items.item_id"), nullable=False),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("points", sa.BigInteger, nullable=False),
    sa.Column("merchant_id", sa.Text, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("voucher_id", pg.UUID(as_uuid=True), sa.ForeignKey("vouchers.voucher_id")),
    sa.Column("idempotency_key", sa.Text),
    sa.Column("created_at", TZ, nullable=False),
    sa.Column("updated_at", TZ, nullable=False),
    sa.Column("redemption_id", sa.Text),
    sa.UniqueConstraint("customer_id", "idempotency_key"),
    sa.CheckConstraint(
        "state IN ('requested', 'points_debited', 'issued', 'rejected', 'cancelled',"
        " 'compensated')",
        name="state_known",
    ),
    sa.CheckConstraint("(state = 'issued') = (voucher_id IS NOT NULL)", name="issued_has_voucher"),
    sa.Index("ix_catalogue_claims_item_customer", "item_id", "customer_id"),
    sa.Index(
        "ix_catalogue_claims_unsettled",
        "updated_at",
        postgresql_where=sa.text("state IN ('requested', 'points_debited', 'cancelled')"),
    ),
    # rewards_0003: the claim-timeout job reads the claims still waiting, by age.
    sa.Index(
        "ix_catalogue_claims_requested",
        "created_at",
        postgresql_where=sa.text("state = 'requested'"),
    ),
    # rewards_0005: a cancelled redemption finds the claim it paid for.
    sa.Index(
        "ix_catalogue_claims_redemption_id",
        "redemption_id",
        postgresql_where=sa.text("redemption_id IS NOT NULL"),
    ),
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
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.CheckConstraint(
        "(kind = 'every_lifetime_points' AND every_points > 0 AND tier IS NULL)"
        " OR (kind = 'tier_reached' AND tier IS NOT NULL AND every_points IS NULL)",
        name="kind",
    ),
    sa.CheckConstraint("(grant_reward_code IS NULL) <> (grant_points IS NULL)", name="one_grant"),
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
    sa.CheckConstraint("referrer_id <> referee_id", name="not_self"),
    sa.Index("ix_referrals_referrer_id", "referrer_id"),
)

referral_programme = sa.Table(
    "referral_programme",
    metadata,
    sa.Column("programme_id", sa.Integer, primary_key=True, server_default="1"),
    sa.Column("referrer_reward_code", sa.Text),
    sa.Column("referrer_points", sa.BigInteger),
    sa.Column("referee_reward_code", sa.Text),
    sa.Column("referee_points", sa.BigInteger),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("updated_at", TZ, nullable=False, server_default=sa.func.now()),
    sa.CheckConstraint("programme_id = 1", name="single_row"),
    sa.CheckConstraint(
        "(referrer_reward_code IS NULL) <> (referrer_points IS NULL)", name="referrer_one_grant"
    ),
    sa.CheckConstraint(
        "(referee_reward_code IS NULL) <> (referee_points IS NULL)", name="referee_one_grant"
    ),
    sa.CheckConstraint(
        "coalesce(referrer_points, 1) > 0 AND coalesce(referee_points, 1) > 0",
        name="points_positive",
    ),
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
    sa.CheckConstraint("amount_minor >= 0 AND returned_minor >= 0", name="amounts"),
    sa.Index("ix_orders_customer_id", "customer_id"),
)

order_returns = sa.Table(
    "order_returns",
    metadata,
    sa.Column("return_id", sa.Text, primary_key=True),
    sa.Column("order_id", sa.Text, nullable=False),
    sa.Column("refunded_minor", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.Text, nullable=False),
    sa.Column("returned_at", TZ, nullable=False),
    sa.CheckConstraint("refunded_minor >= 0", name="amount"),
    sa.Index("ix_order_returns_order_id", "order_id"),
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
    # Released in the order they came; GENERATED ALWAYS, so no insert can set it.
    sa.Column("arrival", sa.BigInteger, sa.Identity(always=True)),
    sa.CheckConstraint("trigger IN ('incident', 'claim')", name="trigger"),
    sa.Index("ix_held_reports_order_id", "order_id"),
)

# rewards_0007: what the compensation path's cache of policies, limits, voucher values and
# reward definitions is checked against (services.rewards.configuration).
config_version = sa.Table(
    "config_version",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, server_default="1"),
    sa.Column("version", sa.BigInteger, nullable=False, server_default="0"),
    sa.CheckConstraint("id = 1", name="single_row"),
)

# rewards_0008: each merchant's granted money (refunds and voucher values) and points per
# budget month (UTC), kept by statement triggers on `compensations`: what the merchant
# budget caps read (`compensation.repository`), one row instead of the month's grants.
merchant_month_grants = sa.Table(
    "merchant_month_grants",
    metadata,
    sa.Column("merchant_id", sa.Text, primary_key=True),
    sa.Column("month", sa.DateTime(timezone=False), primary_key=True),
    sa.Column("money_minor", sa.BigInteger, nullable=False),
    sa.Column("points", sa.BigInteger, nullable=False),
)
