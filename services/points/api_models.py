"""Request and response bodies of the partner API, and how domain values become them.

Points are integers; money (spend still needed for the next tier) is a decimal string in
the programme currency, never a JSON number.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.points.api_support import MAX_POINTS, BodyId, money_text
from services.points.domain.balances import Balance, DatedPoints
from services.points.domain.ledger import EntryKind, LedgerEntry
from services.points.domain.tiers import Tier
from services.points.queries import AccountView
from services.points.rules import ProgrammeRules
from services.points.service import RedemptionOutcome

Points = Annotated[int, Field(strict=True, ge=1, le=MAX_POINTS)]


class DatedPointsOut(BaseModel):
    at: datetime = Field(description="When these points become available (or expire)")
    points: int


class TierProgressOut(BaseModel):
    next_tier: Tier | None = Field(description="None at the top tier")
    purchases_needed: int
    spend_needed: str = Field(description="Decimal string in `currency`", examples=["120.00"])
    currency: str


class BalanceOut(BaseModel):
    """A customer's points now; expired points never count, whether or not the job ran."""

    customer_id: str
    as_of: datetime
    available: int = Field(description="Redeemable now, net of debt (negative when in debt)")
    pending: int = Field(description="Inside the merchants' return windows")
    pending_releases: list[DatedPointsOut]
    expiring_soon: int = Field(description="Points expiring within the next 30 days")
    expiring_dates: list[DatedPointsOut]
    debt: int = Field(description="Points reversed after they had been spent")
    lifetime_earned: int
    purchase_count: int
    tier: Tier
    progress: TierProgressOut


class BalanceSummary(BaseModel):
    available: int
    pending: int
    debt: int


class LedgerEntryOut(BaseModel):
    id: int = Field(description="Position in the ledger (later entries have larger ids)")
    kind: EntryKind
    points: int = Field(description="Signed: positive adds points, negative takes them")
    occurred_at: datetime
    merchant_id: str | None
    reference: str = Field(description="Order, return, redemption, credit or adjustment id")
    reason: str | None


class LedgerPage(BaseModel):
    entries: list[LedgerEntryOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page")


class RedemptionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    points: Points
    merchant_id: BodyId
    reference: BodyId = Field(description="The partner's own reference (basket, order...)")


class RedemptionOut(BaseModel):
    redemption_id: str
    customer_id: str
    points: int
    merchant_id: str
    reference: str
    status: Literal["completed", "cancelled"]
    occurred_at: datetime
    cancelled_at: datetime | None
    balance: BalanceSummary = Field(description="The customer's balance as of this answer")


def _dated(items: tuple[DatedPoints, ...]) -> list[DatedPointsOut]:
    return [DatedPointsOut(at=item.at, points=item.points) for item in items]


def balance_out(view: AccountView, rules: ProgrammeRules, now: datetime) -> BalanceOut:
    currency = rules.earning.currency_rates.programme_currency
    exponent = rules.earning.currency_rates.exponent(currency)
    balance = view.balance
    return BalanceOut(
        customer_id=view.customer_id,
        as_of=now,
        available=balance.available,
        pending=balance.pending,
        pending_releases=_dated(balance.pending_releases),
        expiring_soon=balance.expiring_soon,
        expiring_dates=_dated(balance.expiring_dates),
        debt=balance.debt,
        lifetime_earned=view.lifetime_earned,
        purchase_count=view.purchase_count,
        tier=view.tier,
        progress=TierProgressOut(
            next_tier=view.progress.next_tier,
            purchases_needed=view.progress.purchases_needed,
            spend_needed=money_text(view.progress.spend_needed_minor, exponent),
            currency=currency,
        ),
    )


def entry_out(entry: LedgerEntry) -> LedgerEntryOut:
    return LedgerEntryOut(
        id=entry.sequence,
        kind=entry.kind,
        points=entry.points,
        occurred_at=entry.occurred_at,
        merchant_id=entry.merchant_id,
        reference=entry.reference,
        reason=entry.reason,
    )


def summary(balance: Balance) -> BalanceSummary:
    return BalanceSummary(available=balance.available, pending=balance.pending, debt=balance.debt)


def redemption_out(outcome: RedemptionOutcome) -> RedemptionOut:
    return RedemptionOut(
        redemption_id=outcome.redemption_id,
        customer_id=outcome.customer_id,
        points=outcome.points,
        merchant_id=outcome.merchant_id,
        reference=outcome.reference,
        status="cancelled" if outcome.cancelled_at is not None else "completed",
        occurred_at=outcome.occurred_at,
        cancelled_at=outcome.cancelled_at,
        balance=summary(outcome.balance),
    )
