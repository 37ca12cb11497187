"""Customer activity summaries, alerts, thresholds, model parameters, event clock, segments.

Revision ID: alerts_0002
Revises: alerts_0001
Create Date: 2026-11-24

Tables are spelled out here (not imported from services.alerts.db) so that this revision keeps
meaning what it meant when it was written, whatever the code later becomes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision: str = "alerts_0002"
down_revision: str | None = "alerts_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _moment(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _updated_at() -> sa.Column:
    return sa.Column(
        "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    )


def _count(name: str) -> sa.Column:
    return sa.Column(name, sa.Integer, nullable=False, server_default="0")


def _create_customer_activity() -> None:
    op.create_table(
        "customer_activity",
        sa.Column("customer_id", sa.Text, primary_key=True),
        _moment("first_purchase_at"),
        _moment("last_purchase_at"),
        _count("purchase_count"),
        _count("visit_count"),
        _count("late_purchase_count"),
        sa.Column("spend_minor", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("currency", sa.Text),
        _count("gap_count"),
        sa.Column("gap_mean_days", sa.Double, nullable=False, server_default="0"),
        sa.Column("gap_sum_squared_deviations", sa.Double, nullable=False, server_default="0"),
        sa.Column("merchant_ids", pg.ARRAY(sa.Text), nullable=False, server_default="{}"),
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
        sa.PrimaryKeyConstraint("customer_id", name="pk_customer_activity"),
        sa.CheckConstraint(
            "purchase_count >= 0 AND visit_count >= 0 AND visit_count <= purchase_count"
            " AND late_purchase_count >= 0 AND spend_minor >= 0 AND gap_count >= 0",
            name="ck_customer_activity_counts_in_range",
        ),
        sa.CheckConstraint(
            "(first_purchase_at IS NULL) = (last_purchase_at IS NULL)"
            " AND first_purchase_at <= last_purchase_at",
            name="ck_customer_activity_purchase_window",
        ),
    )
    op.create_index(
        "ix_customer_activity_next_check_at",
        "customer_activity",
        ["next_check_at"],
        postgresql_where=sa.text("next_check_at IS NOT NULL"),
    )
    op.create_index(
        "ix_customer_activity_follow_up_due_at",
        "customer_activity",
        ["follow_up_due_at"],
        postgresql_where=sa.text("follow_up_due_at IS NOT NULL"),
    )


def _create_alerts() -> None:
    op.create_table(
        "alerts",
        sa.Column("alert_id", pg.UUID(as_uuid=True), nullable=False),
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
        _moment("tripped_at", nullable=False),
        _moment("opened_at", nullable=False),
        _moment("escalated_at"),
        _moment("acknowledged_at"),
        sa.Column("ack_note", sa.Text),
        _moment("closed_at"),
        sa.Column("closed_by_event_id", pg.UUID(as_uuid=True)),
        sa.PrimaryKeyConstraint("alert_id", name="pk_alerts"),
        sa.CheckConstraint("kind IN ('lapse')", name="ck_alerts_kind"),
        sa.CheckConstraint("status IN ('at_risk', 'lapsed')", name="ck_alerts_status"),
        sa.CheckConstraint(
            "rule IN ('inactivity', 'own_rhythm', 'alive_probability')", name="ck_alerts_rule"
        ),
        sa.CheckConstraint("segment IN ('A', 'B', 'C')", name="ck_alerts_segment"),
        sa.CheckConstraint("value_at_risk_minor >= 0", name="ck_alerts_value_at_risk"),
        sa.CheckConstraint(
            "(status = 'lapsed') OR escalated_at IS NULL", name="ck_alerts_escalation"
        ),
    )
    # At most one open alert per customer and kind, whatever the code does.
    op.create_index(
        "uq_alerts_open_customer_kind",
        "alerts",
        ["customer_id", "kind"],
        unique=True,
        postgresql_where=sa.text("closed_at IS NULL"),
    )
    op.create_index(
        "ix_alerts_open_by_value",
        "alerts",
        [sa.text("value_at_risk_minor DESC"), "alert_id"],
        postgresql_where=sa.text("closed_at IS NULL"),
    )
    op.create_index("ix_alerts_customer_id", "alerts", ["customer_id"])


def _create_configuration_tables() -> None:
    op.create_table(
        "alert_thresholds",
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("scope_id", sa.Text, nullable=False),
        sa.Column("settings", pg.JSONB, nullable=False),
        _updated_at(),
        sa.PrimaryKeyConstraint("scope", "scope_id", name="pk_alert_thresholds"),
        sa.CheckConstraint(
            "scope IN ('default', 'merchant', 'category')", name="ck_alert_thresholds_scope"
        ),
        sa.CheckConstraint(
            "(scope = 'default') = (scope_id = '')", name="ck_alert_thresholds_scope_id"
        ),
    )
    op.create_table(
        "model_parameters",
        sa.Column("fit_id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("r", sa.Double, nullable=False),
        sa.Column("alpha", sa.Double, nullable=False),
        sa.Column("a", sa.Double, nullable=False),
        sa.Column("b", sa.Double, nullable=False),
        sa.Column("time_unit_days", sa.Double, nullable=False),
        sa.Column("log_likelihood", sa.Double, nullable=False),
        sa.Column("customers_fitted", sa.Integer, nullable=False),
        _moment("as_of", nullable=False),
        sa.Column(
            "fitted_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("fit_id", name="pk_model_parameters"),
        sa.CheckConstraint(
            "r > 0 AND alpha > 0 AND a > 0 AND b > 0 AND time_unit_days > 0"
            " AND customers_fitted > 0",
            name="ck_model_parameters_positive",
        ),
    )
    op.create_table(
        "event_clock",
        sa.Column("clock", sa.Text, nullable=False),
        _moment("latest_occurred_at", nullable=False),
        _updated_at(),
        sa.PrimaryKeyConstraint("clock", name="pk_event_clock"),
    )
    op.create_table(
        "value_segment_cutoffs",
        sa.Column("merchant_id", sa.Text, nullable=False),
        sa.Column("a_min_revenue_minor", sa.BigInteger),
        sa.Column("b_min_revenue_minor", sa.BigInteger),
        sa.Column("customers", sa.Integer, nullable=False),
        _moment("computed_at", nullable=False),
        sa.PrimaryKeyConstraint("merchant_id", name="pk_value_segment_cutoffs"),
    )


def upgrade() -> None:
    _create_customer_activity()
    _create_alerts()
    _create_configuration_tables()


def downgrade() -> None:
    for table in (
        "value_segment_cutoffs",
        "event_clock",
        "model_parameters",
        "alert_thresholds",
        "alerts",
        "customer_activity",
    ):
        op.drop_table(table)
