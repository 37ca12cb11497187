"""Rule edits: who last edited a rule version and when, and what each edit replaced.

Revision ID: points_0003
Revises: points_0002
Create Date: 2026-11-23

An auditor must see every change to the earning rules. `PUT /v1/admin/rules/{id}`
replaces a version that has not started yet; before it does, the content it replaces
goes to `earning_rule_edits` with the editing key and time, in the same transaction.
That table is append-only (trigger), as the ledger is: the history cannot be rewritten.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision: str = "points_0003"
down_revision: str | None = "points_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def _create_rule_edits() -> None:
    op.create_table(
        "earning_rule_edits",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("version_id", sa.BigInteger, nullable=False),
        sa.Column("effective_from", TZ, nullable=False),
        sa.Column("rules", pg.JSONB, nullable=False),
        sa.Column("tier_policy", pg.JSONB),
        sa.Column("edited_by", sa.Text, nullable=False),
        sa.Column("edited_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_earning_rule_edits"),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["earning_rules.id"],
            name="fk_earning_rule_edits_version_id_earning_rules",
        ),
    )
    op.create_index(
        "ix_earning_rule_edits_version_id_id", "earning_rule_edits", ["version_id", "id"]
    )


_TRIGGERS = [
    """
    CREATE FUNCTION points_rule_edits_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'the earning rule edit history is append-only: % refused', TG_OP
            USING ERRCODE = 'restrict_violation';
    END $$
    """,
    """
    CREATE TRIGGER earning_rule_edits_append_only BEFORE UPDATE OR DELETE
        ON earning_rule_edits
        FOR EACH ROW EXECUTE FUNCTION points_rule_edits_append_only()
    """,
    """
    CREATE TRIGGER earning_rule_edits_no_truncate BEFORE TRUNCATE ON earning_rule_edits
        FOR EACH STATEMENT EXECUTE FUNCTION points_rule_edits_append_only()
    """,
]


def upgrade() -> None:
    op.add_column("earning_rules", sa.Column("updated_by", sa.Text))
    op.add_column("earning_rules", sa.Column("updated_at", TZ))
    _create_rule_edits()
    for statement in _TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS earning_rule_edits_no_truncate ON earning_rule_edits")
    op.execute("DROP TRIGGER IF EXISTS earning_rule_edits_append_only ON earning_rule_edits")
    op.drop_table("earning_rule_edits")
    op.execute("DROP FUNCTION IF EXISTS points_rule_edits_append_only()")
    op.drop_column("earning_rules", "updated_at")
    op.drop_column("earning_rules", "updated_by")
