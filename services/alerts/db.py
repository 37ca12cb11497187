"""Tables of the alerts database (the migration `alerts_0002` creates them).

What the database itself guarantees:
- at most one OPEN alert per customer and kind: a partial unique index on
  `alerts (customer_id, kind) WHERE closed_at IS NULL`, so two scanners racing, or a scanner
  racing a replay, can never open a second one;
- an alert's status, rule, segment and money are always in range (CHECK constraints);
- scanning costs O(due): `customer_activity.next_check_at` and `.follow_up_due_at` carry
  partial indexes (rows with nothing to wait for have NULL and are not in the index).

Writers lock the customer's `customer_activity` row (`SELECT ... FOR UPDATE`) before touching
that customer's alerts, so the consumer and the scanners change one customer one at a time.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from shared.db import new_metadata

metadata = new_metadata()

ALERT_KINDS = ("lapse",)
ALERT_STATUSES = ("at_risk", "lapsed")
LAPSE_RULES = ("inactivity", "own_rhythm", "alive_probability", "no_purchase_probability")
SEGMENTS = ("A", "B", "C")
THRESHOLD_SCOPES = ("default", "merchant", "category")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _moment(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _updated_at() -> sa.Column[object]:
    return sa.Column(
        "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    )


def _count(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.Integer, nullable=False, server_default="0")


customer_activity = sa.Table(
    "customer_activity",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    _moment("first_purchase_at"),
    _moment("last_purchase_at"),
    _count("purchase_count"),
    _count("visit_count"),
    _count("late_purchase_count"),
    sa.Column("spend_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("currency", sa.Text),
    # Welford's running gap statistics (days between visits); floats: durations, not money.
    _count("gap_count"),
    sa.Column("gap_mean_days", sa.Double, nullable=False, server_default="0"),
    sa.Column("gap_sum_squared_deviations", sa.Double, nullable=False, server_default="0"),
    sa.Column("merchant_ids", pg.ARRAY(sa.Text), nullable=False, server_default="{}"),
    # Net spend per merchant / gross item spend per category, in minor units: they pick the
    # customer's home merchant (segment, thresholds) and main category (thresholds).
    sa.Column("merchant_spend_minor", pg.JSONB, nullable=False, server_default="{}"),
    sa.Column("category_spend_minor", pg.JSONB, nullable=False, server_default="{}"),
    sa.Column("first_merchant_id", sa.Text),
    sa.Column("first_store_id", sa.Text),
    sa.Column("tier", sa.Text),
    _moment("tier_changed_at"),
    _moment("next_check_at"),
    _moment("follow_up_due_at"),
    _moment("follow_up_raised_at"),
    _updated_at(),
    sa.CheckConstraint(
        "purchase_count >= 0 AND visit_count >= 0 AND visit_count <= purchase_count"
        " AND late_purchase_count >= 0 AND spend_minor >= 0 AND gap_count >= 0",
        name="counts_in_range",
    ),
    sa.CheckConstraint(
        "(first_purchase_at IS NULL) = (last_purchase_at IS NULL)"
        " AND first_purchase_at <= last_purchase_at",
        name="purchase_window",
    ),
)
sa.Index(
    "ix_customer_activity_next_check_at",
    customer_activity.c.next_check_at,
    postgresql_where=customer_activity.c.next_check_at.isnot(None),
)
sa.Index(
    "ix_customer_activity_follow_up_due_at",
    customer_activity.c.follow_up_due_at,
    postgresql_where=customer_activity.c.follow_up_due_at.isnot(None),
)

# Every purchase's time, amount and merchant (0005): exact visits whatever the arrival order,
# and the history a backtest replays. Written by the consumer in the batch's transaction.
purchase_history = sa.Table(
    "purchase_history",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("event_id", pg.UUID(as_uuid=True), primary_key=True),
    _moment("purchased_at", nullable=False),
    sa.Column("merchant_id", sa.Text, nullable=False),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.CheckConstraint("amount_minor >= 0", name="amount"),
)
sa.Index("ix_purchase_history_purchased_at", purchase_history.c.purchased_at)

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("alert_id", pg.UUID(as_uuid=True), primary_key=True),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("rule", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("value_at_risk_minor", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.Text, nullable=False),
    sa.Column("segment", sa.Text, nullable=False),
    sa.Column("tier", sa.Text),
    sa.Column("merchant_id", sa.Text),
    _moment("last_purchase_at", nullable=False),
    _moment("tripped_at", nullable=False),  # when the rule tripped (the event's occurred_at)
    _moment("opened_at", nullable=False),  # when a scanner noticed
    _moment("escalated_at"),
    _moment("acknowledged_at"),
    sa.Column("ack_note", sa.Text),
    sa.Column("acknowledged_by", sa.Text),  # the API key's name (0005; before: caller's text)
    sa.Column("acknowledged_key_id", sa.Text),  # the API key they used (0003)
    sa.Column("ack_claimed_by", sa.Text),  # who the caller said they were (0005)
    _moment("closed_at"),
    sa.Column("closed_by_event_id", pg.UUID(as_uuid=True)),
    sa.CheckConstraint(_one_of("kind", ALERT_KINDS), name="kind"),
    sa.CheckConstraint(_one_of("status", ALERT_STATUSES), name="status"),
    sa.CheckConstraint(_one_of("rule", LAPSE_RULES), name="rule"),
    sa.CheckConstraint(_one_of("segment", SEGMENTS), name="segment"),
    sa.CheckConstraint("value_at_risk_minor >= 0", name="value_at_risk"),
    sa.CheckConstraint("(status = 'lapsed') OR escalated_at IS NULL", name="escalation"),
    sa.CheckConstraint(
        "(acknowledged_at IS NULL) = (acknowledged_by IS NULL)", name="acknowledgement"
    ),
)
sa.Index(
    "uq_alerts_open_customer_kind",
    alerts.c.customer_id,
    alerts.c.kind,
    unique=True,
    postgresql_where=alerts.c.closed_at.is_(None),
)
sa.Index(
    "ix_alerts_open_by_value",
    alerts.c.value_at_risk_minor.desc(),
    alerts.c.alert_id,
    postgresql_where=alerts.c.closed_at.is_(None),
)
sa.Index(
    "ix_alerts_open_merchant_by_value",
    alerts.c.merchant_id,
    alerts.c.value_at_risk_minor.desc(),
    alerts.c.alert_id,
    postgresql_where=alerts.c.closed_at.is_(None),
)
sa.Index("ix_alerts_customer_id", alerts.c.customer_id)

alert_thresholds = sa.Table(
    "alert_thresholds",
    metadata,
    sa.Column("scope", sa.Text, primary_key=True),
    sa.Column("scope_id", sa.Text, primary_key=True),  # '' for the default scope
    sa.Column("settings", pg.JSONB, nullable=False),
    _updated_at(),
    sa.CheckConstraint(_one_of("scope", THRESHOLD_SCOPES), name="scope"),
    sa.CheckConstraint("(scope = 'default') = (scope_id = '')", name="scope_id"),
)

model_parameters = sa.Table(
    "model_parameters",
    metadata,
    sa.Column("fit_id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("r", sa.Double, nullable=False),
    sa.Column("alpha", sa.Double, nullable=False),
    sa.Column("a", sa.Double, nullable=False),
    sa.Column("b", sa.Double, nullable=False),
    sa.Column("time_unit_days", sa.Double, nullable=False),
    sa.Column("log_likelihood", sa.Double, nullable=False),
    sa.Column("customers_fitted", sa.Integer, nullable=False),
    _moment("as_of", nullable=False),  # the "now" customer ages were measured at
    sa.Column(
        "fitted_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    # When the pending lapse checks were recomputed under this fit; NULL: still to do (0004).
    _moment("checks_rescheduled_at"),
    sa.CheckConstraint(
        "r > 0 AND alpha > 0 AND a > 0 AND b > 0 AND time_unit_days > 0 AND customers_fitted > 0",
        name="positive",
    ),
)

event_clock = sa.Table(
    "event_clock",
    metadata,
    sa.Column("clock", sa.Text, primary_key=True),
    _moment("latest_occurred_at", nullable=False),
    _updated_at(),
)

value_segment_cutoffs = sa.Table(
    "value_segment_cutoffs",
    metadata,
    sa.Column("merchant_id", sa.Text, primary_key=True),
    sa.Column("a_min_revenue_minor", sa.BigInteger),  # NULL: nobody is A
    sa.Column("b_min_revenue_minor", sa.BigInteger),  # NULL: nobody is B
    sa.Column("customers", sa.Integer, nullable=False),
    _moment("computed_at", nullable=False),
)
