"""What partner apps and admins do to an account, in memory (no I/O): redeem, cancel a
redemption, adjust. `service` wraps these in locks, storage and the outbox."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from services.points.book import Account, Changes, LedgerLine
from services.points.domain.ledger import EntryKind
from services.points.domain.lots import (
    LotDraw,
    LotMovement,
    cancel_redemption,
    claw_back,
    credit_lot,
    redeem_points,
    settle_debt,
)
from services.points.events import points_adjusted, points_redeemed, points_redemption_cancelled
from services.points.rules import ProgrammeRules
from shared.contracts.envelope import EventEnvelope, derived_event_id


@dataclass(frozen=True)
class Redemption:
    """What a partner app asked to spend."""

    redemption_id: str
    points: int
    merchant_id: str
    reference: str


@dataclass(frozen=True)
class Adjustment:
    """An administrator's correction: who, why, how many (signed)."""

    adjustment_id: str
    points: int
    reason: str
    actor: str
    merchant_id: str | None = None


def redeem(
    account: Account, redemption: Redemption, now: datetime, changes: Changes
) -> tuple[tuple[LotDraw, ...], list[EventEnvelope]]:
    """Spend available points, soonest-expiring lot first.

    Raises `InsufficientPointsError` (nothing taken) when available points, net of debt,
    fall short. Returns the draws (stored, so a cancellation gives back the same lots).
    """
    movement = redeem_points(account.lots, redemption.points, now, account.debt)
    changes.move_lots(account, movement)
    changes.write(
        LedgerLine(
            account.customer_id,
            EntryKind.REDEMPTION,
            -redemption.points,
            redemption.redemption_id,
            now,
            merchant_id=redemption.merchant_id,
        )
    )
    fields = {
        "redemption_id": redemption.redemption_id,
        "merchant_id": redemption.merchant_id,
        "reference": redemption.reference,
        "points": redemption.points,
    }
    return movement.draws, [points_redeemed(account, fields, now)]


def cancel(
    account: Account,
    redemption: Redemption,
    draws: Sequence[LotDraw],
    now: datetime,
    changes: Changes,
) -> list[EventEnvelope]:
    """Give a redemption's points back to the very lots they came from (original expiry).

    `account.lots` must include those lots even when they are now empty.
    """
    lots = cancel_redemption(account.lots, draws)
    changes.move_lots(account, LotMovement(lots, tuple(draws)))
    changes.write(
        LedgerLine(
            account.customer_id,
            EntryKind.REDEMPTION_CANCEL,
            redemption.points,
            redemption.redemption_id,
            now,
            merchant_id=redemption.merchant_id,
        )
    )
    _settle(account, now, changes)
    return [
        points_redemption_cancelled(
            account, redemption.redemption_id, redemption.merchant_id, redemption.points, now
        )
    ]


def adjust(
    account: Account,
    adjustment: Adjustment,
    rules: ProgrammeRules,
    now: datetime,
    changes: Changes,
) -> list[EventEnvelope]:
    """Add points (a lot available at once) or take them (pending first; debt if spent)."""
    if adjustment.points > 0:
        _add_adjustment_lot(account, adjustment, rules, now, changes)
    else:
        taken = claw_back(account.lots, -adjustment.points, now, account.debt)
        changes.move_lots(account, taken)
        account.debt = taken.debt
    changes.write(
        LedgerLine(
            account.customer_id,
            EntryKind.ADJUSTMENT,
            adjustment.points,
            adjustment.adjustment_id,
            now,
            merchant_id=adjustment.merchant_id,
            reason=adjustment.reason,
            actor=adjustment.actor,
        )
    )
    fields = {
        "adjustment_id": adjustment.adjustment_id,
        "points": adjustment.points,
        "reason": adjustment.reason,
        "actor": adjustment.actor,
        "merchant_id": adjustment.merchant_id,
    }
    return [points_adjusted(account, fields, now)]


def _add_adjustment_lot(
    account: Account,
    adjustment: Adjustment,
    rules: ProgrammeRules,
    now: datetime,
    changes: Changes,
) -> None:
    lot = credit_lot(
        str(derived_event_id(f"adjustment:{adjustment.adjustment_id}", "lot")),
        adjustment.points,
        now,
        adjustment.adjustment_id,
        adjustment.merchant_id,
        source=EntryKind.ADJUSTMENT,
        validity_months=rules.earning.validity_months,
    )
    changes.add_lot(account, lot)
    _settle(account, now, changes)


def _settle(account: Account, now: datetime, changes: Changes) -> None:
    if account.debt:
        settled = settle_debt(account.lots, account.debt, now)
        changes.move_lots(account, settled)
        account.debt = settled.debt
