"""Tables of the points database (the migrations `points_0002` to `points_0004` create them).

What the database itself guarantees, so that no code path can break it:
- `ledger` is append-only (a trigger refuses UPDATE, DELETE and TRUNCATE) and each
  originating event or reference applies once (`UNIQUE (kind, reference)`); the sign of
  an entry is fixed by its kind, an adjustment needs a reason.
- `accounts.ledger_balance` is the sum of the customer's ledger entries: only the
  ledger's insert trigger may change it, and that trigger also refuses a redemption
  that leaves the balance negative.
- a lot never gives away more than it holds (`CHECK` on its counters), and its
  `remaining` is a generated column, so no writer can get it out of step.
- debt, counters and refunds are never negative; an order never reverses more than it
  earned.
- lots, ledger lines and orders name an existing account, an order's lot an existing lot:
  checked once per statement by triggers that keep the foreign keys' names, and
  `accounts` and `lots` rows are never deleted nor re-keyed (points_0008).
- `earning_rule_edits` is append-only (a trigger refuses UPDATE, DELETE and TRUNCATE):
  what an edit of a rule version replaced, who edited it and when, stays for audit.
"Only available points can be redeemed" needs the clock and is kept by the domain rules
under a row lock: every writer locks the customer's `accounts` row (`SELECT ... FOR
UPDATE`) before reading or changing the customer's lots, so two redemptions (or a
redemption and a return) of one customer are applied one after the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from services.points.domain.earning import UNWEIGHTED
from services.points.domain.returns import EarningLine, ReturnedLine
from shared.db import new_metadata

metadata = new_metadata()

TIERS = ("member", "silver", "gold", "platinum")
ENTRY_KINDS = (
    "accrual",
    "reversal",
    "redemption",
    "redemption_cancel",
    "expiry",
    "adjustment",
    "credit",
)
LOT_SOURCES = ("accrual", "credit", "adjustment")
RETURN_STATUSES = ("parked", "applied", "rejected")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _moment(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _recorded_at() -> sa.Column[object]:
    return sa.Column(
        "recorded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    )


LEDGER_SIGN_RULE = (
    "(kind IN ('accrual', 'credit', 'redemption_cancel') AND points > 0)"
    " OR (kind IN ('reversal', 'redemption', 'expiry') AND points < 0)"
    " OR (kind = 'adjustment' AND points <> 0 AND reason IS NOT NULL AND actor IS NOT NULL)"
)

accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("tier", sa.Text, nullable=False, server_default="member"),
    sa.Column("debt", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("ledger_balance", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("lifetime_earned", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("purchase_count", sa.Integer, nullable=False, server_default="0"),
    _moment("first_purchase_at", nullable=True),
    _moment("tier_changed_at", nullable=True),
    _moment("next_review_at", nullable=True),
    _recorded_at(),
    sa.Column("settled_points", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("settled_purchase_count", sa.Integer, nullable=False, server_default="0"),
    sa.CheckConstraint(_one_of("tier", TIERS), name="tier_known"),
    sa.CheckConstraint(
        "settled_points >= 0 AND settled_purchase_count >= 0", name="settled_not_negative"
    ),
    sa.CheckConstraint("debt >= 0", name="debt_not_negative"),
    sa.CheckConstraint("purchase_count >= 0", name="purchase_count_not_negative"),
    sa.Index(
        "ix_accounts_next_review_at",
        "next_review_at",
        postgresql_where=sa.text("next_review_at IS NOT NULL"),
    ),
    postgresql_with={"fillfactor": 70},  # room on the page for HOT updates (points_0010)
)

ledger = sa.Table(
    "ledger",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("customer_id", sa.Text, nullable=False),  # key checked per statement (points_0008)
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("points", sa.BigInteger, nullable=False),
    sa.Column("merchant_id", sa.Text),
    sa.Column("reference", sa.Text, nullable=False),
    _moment("occurred_at"),
    _recorded_at(),
    sa.Column("reason", sa.Text),
    sa.Column("actor", sa.Text),
    sa.Column("event_id", pg.UUID(as_uuid=True)),
    sa.UniqueConstraint("kind", "reference", name="uq_ledger_kind_reference"),
    sa.CheckConstraint(_one_of("kind", ENTRY_KINDS), name="kind_known"),
    sa.CheckConstraint(LEDGER_SIGN_RULE, name="sign_matches_kind"),
    sa.Index("ix_ledger_customer_id_id", "customer_id", "id"),
)

lots = sa.Table(
    "lots",
    metadata,
    sa.Column("lot_id", pg.UUID(as_uuid=True), primary_key=True),
    sa.Column("customer_id", sa.Text, nullable=False),  # key checked per statement (points_0008)
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("points", sa.BigInteger, nullable=False),
    sa.Column("redeemed", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("clawed_back", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("expired", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column(
        "remaining",
        sa.BigInteger,
        sa.Computed("points - redeemed - clawed_back - expired", persisted=True),
        nullable=False,
    ),
    _moment("earned_at"),
    _moment("pending_until"),
    _moment("expires_at"),
    sa.Column("merchant_id", sa.Text),
    sa.Column("reference", sa.Text),
    _recorded_at(),
    sa.CheckConstraint(_one_of("source", LOT_SOURCES), name="source_known"),
    sa.CheckConstraint("points > 0", name="points_positive"),
    sa.CheckConstraint(
        "redeemed >= 0 AND clawed_back >= 0 AND expired >= 0", name="counters_not_negative"
    ),
    sa.CheckConstraint("redeemed + clawed_back + expired <= points", name="counters_within_points"),
    sa.CheckConstraint("earned_at <= pending_until AND pending_until <= expires_at", name="dates"),
    # One index serves the live lots of a purchase (`remaining > 0` is a range on its second
    # column, so spent lots are skipped inside the index) and every lot of a customer (the
    # audit); see migration points_0006.
    sa.Index("ix_lots_customer_id_remaining", "customer_id", "remaining"),
    sa.Index("ix_lots_live_expires_at", "expires_at", postgresql_where=sa.text("remaining > 0")),
)

order_earnings = sa.Table(
    "order_earnings",
    metadata,
    sa.Column("order_id", sa.Text, primary_key=True),
    sa.Column("customer_id", sa.Text, nullable=False),  # key checked per statement (points_0008)
    sa.Column("merchant_id", sa.Text, nullable=False),
    sa.Column("event_id", pg.UUID(as_uuid=True), nullable=False),
    _moment("occurred_at"),
    sa.Column("currency", sa.Text, nullable=False),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Column("spend_minor", sa.BigInteger, nullable=False),
    sa.Column("points", sa.BigInteger, nullable=False),
    sa.Column("refunded_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("reversed_points", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("lot_id", pg.UUID(as_uuid=True)),  # key checked per statement (points_0008)
    _recorded_at(),
    # The receipt lines with the weight each earned with, and the value returned per line
    # (exact fractions as text); NULL: one unweighted line / refunds spread proportionally.
    sa.Column("lines", pg.JSONB),
    sa.Column("returned", pg.JSONB),
    _moment("settles_at"),  # the order's return window ends: points.settled is due
    _moment("settled_at", nullable=True),
    sa.CheckConstraint("amount_minor >= 0 AND spend_minor >= 0", name="amounts_not_negative"),
    sa.CheckConstraint("refunded_minor >= 0", name="refunded_not_negative"),
    sa.CheckConstraint(
        "points >= 0 AND reversed_points >= 0 AND reversed_points <= points",
        name="reversal_within_points",
    ),
    sa.Index("ix_order_earnings_customer_id_occurred_at", "customer_id", "occurred_at"),
    sa.Index(
        "ix_order_earnings_unsettled_settles_at",
        "settles_at",
        postgresql_where=sa.text("settled_at IS NULL"),
    ),
)

# One row per return: `parked` until its order arrives, then `applied` (or `rejected`
# when it cannot belong to that order). The primary key applies each return once.
order_returns = sa.Table(
    "order_returns",
    metadata,
    sa.Column("return_id", sa.Text, primary_key=True),
    sa.Column("order_id", sa.Text, nullable=False),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("merchant_id", sa.Text, nullable=False),
    sa.Column("event_id", pg.UUID(as_uuid=True), nullable=False),
    _moment("occurred_at"),
    sa.Column("currency", sa.Text, nullable=False),
    sa.Column("refunded_minor", sa.BigInteger, nullable=False),
    sa.Column("items", pg.JSONB),  # the lines the return named: [{"sku", "quantity"}]
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("points_reversed", sa.BigInteger),
    sa.Column("rejection", sa.Text),
    _moment("applied_at", nullable=True),
    _recorded_at(),
    sa.CheckConstraint(_one_of("status", RETURN_STATUSES), name="status_known"),
    sa.CheckConstraint("refunded_minor > 0", name="refund_positive"),
    sa.Index(
        "ix_order_returns_parked_order_id",
        "order_id",
        postgresql_where=sa.text("status = 'parked'"),
    ),
)

daily_earnings = sa.Table(
    "daily_earnings",
    metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("points", sa.BigInteger, nullable=False),
)

earning_rules = sa.Table(
    "earning_rules",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    _moment("effective_from"),
    sa.Column("rules", pg.JSONB, nullable=False),
    sa.Column("tier_policy", pg.JSONB),
    sa.Column("created_by", sa.Text, nullable=False),
    _recorded_at(),
    sa.Column("updated_by", sa.Text),
    _moment("updated_at", nullable=True),
    sa.UniqueConstraint("effective_from", name="uq_earning_rules_effective_from"),
)

# One row per edit of a rule version: the content the edit replaced, as it was stored.
earning_rule_edits = sa.Table(
    "earning_rule_edits",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("version_id", sa.BigInteger, sa.ForeignKey("earning_rules.id"), nullable=False),
    _moment("effective_from"),
    sa.Column("rules", pg.JSONB, nullable=False),
    sa.Column("tier_policy", pg.JSONB),
    sa.Column("edited_by", sa.Text, nullable=False),
    _moment("edited_at"),
    sa.Index("ix_earning_rule_edits_version_id_id", "version_id", "id"),
)

redemptions = sa.Table(
    "redemptions",
    metadata,
    sa.Column("redemption_id", pg.UUID(as_uuid=True), primary_key=True),
    sa.Column("customer_id", sa.Text, sa.ForeignKey("accounts.customer_id"), nullable=False),
    sa.Column("idempotency_key", sa.Text, nullable=False),
    sa.Column("request_fingerprint", pg.BYTEA, nullable=False),
    sa.Column("points", sa.BigInteger, nullable=False),
    sa.Column("merchant_id", sa.Text, nullable=False),
    sa.Column("reference", sa.Text, nullable=False),
    sa.Column("draws", pg.JSONB, nullable=False),
    # Set for the debit of a rewards catalogue claim: only the saga may give it back.
    sa.Column("claim_id", sa.Text),
    _moment("occurred_at"),
    _moment("cancelled_at", nullable=True),
    _recorded_at(),
    sa.UniqueConstraint(
        "customer_id", "idempotency_key", name="uq_redemptions_customer_id_idempotency_key"
    ),
    sa.CheckConstraint("points > 0", name="points_positive"),
)


# How the JSONB columns of orders and returns are stored: exact fractions as text, so a
# later return takes back exactly what the lines earned.


def _json(value: Any) -> Any:
    # The read pool's bare asyncpg connection hands JSONB over as text.
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def lines_to_json(lines: Sequence[EarningLine]) -> str | None:
    """Receipt lines as stored (weights as exact fractions in text); None when unlined.

    Most lines weigh the rules' UNWEIGHTED: its text is written as is, not formatted
    from the Fraction per line (0.88 against 1.16 µs per bench order)."""
    if not lines:
        return None
    return orjson.dumps(
        [
            {
                "sku": line.sku,
                "quantity": line.quantity,
                "unit_price_minor": line.unit_price_minor,
                "weight": "1" if line.weight is UNWEIGHTED else str(line.weight),
            }
            for line in lines
        ]
    ).decode()


def lines_from_json(value: Any) -> tuple[EarningLine, ...]:
    raw = _json(value) or ()
    return tuple(
        EarningLine(
            line["sku"], line["quantity"], line["unit_price_minor"], Fraction(line["weight"])
        )
        for line in raw
    )


def returned_to_json(returned: Sequence[Fraction]) -> str | None:
    """Returned value per line as exact fractions in text; None when nothing came back."""
    return orjson.dumps([str(r) for r in returned]).decode() if returned else None


def returned_from_json(value: Any) -> tuple[Fraction, ...]:
    return tuple(Fraction(r) for r in (_json(value) or ()))


def items_from_json(value: Any) -> tuple[ReturnedLine, ...]:
    return tuple(ReturnedLine(i["sku"], i["quantity"]) for i in (_json(value) or ()))
