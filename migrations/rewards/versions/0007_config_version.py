"""The configuration version the compensation path caches by, and one index less per breach.

- `config_version`: one row (id 1) whose `version` goes up in the same transaction as
  every write to `guarantee_policies`, `merchant_limits` or `reward_definitions` (a
  statement trigger on each, so an API call, a migration or a hand-written UPDATE all
  count). The rewards consumer keeps policies, limits, voucher values and reward
  definitions between batches and reads only this row per batch: an unchanged version
  means nothing it holds has changed (services/rewards/configuration/service.py).
- `uq_breaches_order_id` dropped: `breach_key` (the primary key) is derived from exactly
  (order_id, promise_kind) by an injective encoding (`domain.guarantee.breach_key`), so
  the key already makes the pair unique; the second unique index cost an index entry per
  breach on the incident path and guarded nothing more.

Revision ID: rewards_0007
Revises: rewards_0006
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "rewards_0007"
down_revision: str | None = "rewards_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CONFIG_TABLES = ("guarantee_policies", "merchant_limits", "reward_definitions")

UPGRADE = (
    """
CREATE TABLE config_version (
    id integer PRIMARY KEY DEFAULT 1,
    version bigint NOT NULL DEFAULT 0,
    CONSTRAINT ck_config_version_single_row CHECK (id = 1)
);
INSERT INTO config_version (id, version) VALUES (1, 0);
CREATE FUNCTION bump_config_version() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN UPDATE config_version SET version = version + 1 WHERE id = 1; RETURN NULL; END $$;
"""
    + "".join(
        f"CREATE TRIGGER {table}_config_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE"
        f" ON {table} FOR EACH STATEMENT EXECUTE FUNCTION bump_config_version();\n"
        for table in _CONFIG_TABLES
    )
    + "ALTER TABLE breaches DROP CONSTRAINT uq_breaches_order_id\n"
)

DOWNGRADE = (
    "ALTER TABLE breaches ADD CONSTRAINT uq_breaches_order_id UNIQUE (order_id, promise_kind);\n"
    + "".join(f"DROP TRIGGER {table}_config_version ON {table};\n" for table in _CONFIG_TABLES)
    + "DROP FUNCTION bump_config_version();\nDROP TABLE config_version\n"
)


def _run(script: str) -> None:
    # One statement at a time: asyncpg prepares each, and a prepared statement holds one.
    # The function's body holds semicolons, none of them at the end of a line.
    for statement in script.split(";\n"):
        if statement.strip():
            op.execute(statement)


def upgrade() -> None:
    _run(UPGRADE)


def downgrade() -> None:
    _run(DOWNGRADE)
