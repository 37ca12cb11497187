"""An index on processed_events.processed_at, so pruning ids past the dedupe retention
(shared.kafka.dedupe) reads the oldest rows only, never the whole table.

Revision ID: points_0005
Revises: points_0004
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "points_0005"
down_revision: str | None = "points_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Built concurrently: the table is written by every consumed batch, and a live service
    # must not stall behind the index build.
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_processed_events_processed_at",
            "processed_events",
            ["processed_at"],
            postgresql_concurrently=True,
            if_not_exists=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index(
            "ix_processed_events_processed_at",
            table_name="processed_events",
            postgresql_concurrently=True,
            if_exists=True,
        )
