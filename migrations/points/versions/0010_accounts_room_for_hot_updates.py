"""`accounts` pages keep 30% of their space free, so that a batch's update of an account
row usually fits on the row's own page: a heap-only (HOT) update, with no new entry in
`pk_accounts` and no search for a page with room.

The points accrual updates the account row of every customer a batch touches (once per
batch: the ledger trigger, points_0007), and a customer comes back batch after batch. At
the default fillfactor of 100 the pages are full from the first insert, so the new
version went to another page: 17% of the updates were HOT (5,945 of 32,816 in a
60,000-purchase run of `python -m bench points`). With 70, 65% were (22,423 of 34,244),
and PostgreSQL's CPU per purchase fell from 69.2 and 73.7 µs to 64.2 and 66.2 µs (runs
alternated, same code). The room is reused, not grown: pruning on the page frees the
versions the committed batches left behind. The table even ended smaller (4.9-5.0 MB
against 5.1-5.5 MB for 19,000 customers), since a non-HOT update leaves its old version
behind on one page and writes the new one on another.

Only pages written from now on keep the room; an existing table gets it for all its rows
when rewritten (VACUUM FULL, or pg_repack without a long lock).

Revision ID: points_0010
Revises: points_0009
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "points_0010"
down_revision: str | None = "points_0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE accounts SET (fillfactor = 70)")


def downgrade() -> None:
    op.execute("ALTER TABLE accounts RESET (fillfactor)")
