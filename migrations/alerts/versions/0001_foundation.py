"""Foundation tables: processed events, dead letters, outbox, API keys.

Revision ID: alerts_0001
Revises:
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

from shared.db import create_foundation_tables, drop_foundation_tables

revision: str = "alerts_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_foundation_tables(op)


def downgrade() -> None:
    drop_foundation_tables(op)
