"""Referral programme as data, and the index the claim-timeout job scans.

Revision ID: rewards_0003
Revises: rewards_0002
Create Date: 2026-11-25

- `referral_programme`: one row (id 1) saying what each side of a referral receives when
  the referred customer first buys: a voucher for a reward code, or points, never both
  for one side. Seeded with 500 points for the referrer and 250 for the new customer,
  the amounts the first version had in code; admins change it without a deploy.
- `ix_catalogue_claims_requested`: claims still waiting for the points service, by age,
  so the timeout job costs O(claims due).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "rewards_0003"
down_revision: str | None = "rewards_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UPGRADE = """
CREATE TABLE referral_programme (
    programme_id integer PRIMARY KEY DEFAULT 1,
    referrer_reward_code text,
    referrer_points bigint,
    referee_reward_code text,
    referee_points bigint,
    active boolean NOT NULL DEFAULT true,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT ck_referral_programme_single_row CHECK (programme_id = 1),
    CONSTRAINT ck_referral_programme_referrer_one_grant CHECK (
        (referrer_reward_code IS NULL) <> (referrer_points IS NULL)),
    CONSTRAINT ck_referral_programme_referee_one_grant CHECK (
        (referee_reward_code IS NULL) <> (referee_points IS NULL)),
    CONSTRAINT ck_referral_programme_points_positive CHECK (
        coalesce(referrer_points, 1) > 0 AND coalesce(referee_points, 1) > 0)
);
INSERT INTO referral_programme (programme_id, referrer_points, referee_points)
    VALUES (1, 500, 250);
CREATE INDEX ix_catalogue_claims_requested ON catalogue_claims (created_at)
    WHERE state = 'requested'
"""

DOWNGRADE = """
DROP INDEX ix_catalogue_claims_requested;
DROP TABLE referral_programme
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
