"""When a fit's pending lapse checks were recomputed under it (NULL: not yet).

Revision ID: alerts_0004
Revises: alerts_0003
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "alerts_0004"
down_revision: str | None = "alerts_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A refit answers before the due times move; the background job marks the fit when done,
    # so whichever instance runs it next knows whether work is left after a restart.
    op.add_column(
        "model_parameters", sa.Column("checks_rescheduled_at", sa.DateTime(timezone=True))
    )
    # Earlier fits were rescheduled before their refit returned.
    op.execute("UPDATE model_parameters SET checks_rescheduled_at = fitted_at")


def downgrade() -> None:
    op.drop_column("model_parameters", "checks_rescheduled_at")
