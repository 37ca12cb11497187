"""Adjustments: an administrator's signed correction, kept with who and why.

Adding points creates a lot available at once; taking them claws back pending points
first, then available ones, and what the lots cannot cover becomes a visible debt. Each
adjustment id is applied once: the same request again is answered from storage, the
same id with anything else is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.points.adjustments.events import points_adjusted
from services.points.adjustments.repository import AdjustmentRecord
from services.points.domain.balances import Balance
from services.points.domain.book import Account, Changes, LedgerLine
from services.points.domain.ledger import EntryKind
from services.points.domain.lots import claw_back, credit_lot, settle_debt
from services.points.domain.programme import ProgrammeRules
from services.points.rules.service import rule_book
from services.points.uow import PointsUnitOfWork
from shared.contracts.envelope import EventEnvelope, derived_event_id
from shared.contracts.topics import Topics
from shared.errors import Conflict, Unprocessable

ACTOR_MAX = 200  # what the ledger and `points.adjusted` keep


class AdjustmentConflict(Conflict):
    code, title = "adjustment_conflict", "Adjustment id already used for another adjustment"


@dataclass(frozen=True)
class Adjustment:
    """An administrator's correction: who, why, how many (signed)."""

    adjustment_id: str
    points: int
    reason: str
    actor: str
    merchant_id: str | None = None


async def actor_of(uow: PointsUnitOfWork, key_id: str) -> str:
    """Who acts: the calling key's name and id, from the key's own row."""
    name = await uow.adjustments.key_name(key_id)
    suffix = f" ({key_id})"
    return f"{(name or 'unnamed key')[: ACTOR_MAX - len(suffix)]}{suffix}"


async def adjustments_page(
    uow: PointsUnitOfWork,
    customer_id: str | None,
    limit: int,
    before: int | None = None,
    adjustment_id: str | None = None,
    merchant_id: str | None = None,
) -> list[AdjustmentRecord]:
    """Adjustments, newest first (all customers, or one; all merchants, or one), keyset-paged
    by ledger id."""
    return await uow.adjustments.page(customer_id, limit, before, adjustment_id, merchant_id)


async def adjust_points(
    uow: PointsUnitOfWork,
    customer_id: str,
    adjustment: Adjustment,
    *,
    points_topic: str = Topics.POINTS,
) -> Balance:
    """An administrator's signed correction, kept with who and why; once per adjustment id."""
    if adjustment.points == 0 or not adjustment.reason.strip() or not adjustment.actor.strip():
        raise Unprocessable("an adjustment needs non-zero points, a reason and an actor")
    now = uow.now
    accounts = await uow.accounts.lock([customer_id])
    account = accounts[customer_id]
    earlier = await uow.adjustments.request_of(adjustment.adjustment_id)
    if earlier is not None:
        # A retry is the same request in full; anything else under the id (another
        # customer, amount, reason or merchant) is a different adjustment, refused.
        asked = (customer_id, adjustment.points, adjustment.reason, adjustment.merchant_id)
        if earlier != asked:
            raise AdjustmentConflict(f"adjustment {adjustment.adjustment_id} already exists")
        return account.balance(now)
    rules = (await rule_book(uow)).in_force(now)
    changes = Changes()
    events = adjust(account, adjustment, rules, now, changes)
    await uow.save(accounts, changes)
    for event in events:
        uow.emit(points_topic, event)
    return account.balance(now)


def adjust(
    account: Account,
    adjustment: Adjustment,
    rules: ProgrammeRules,
    now: datetime,
    changes: Changes,
) -> list[EventEnvelope]:
    """Add points (a lot available at once) or take them (pending first; debt if spent)."""
    if adjustment.points > 0:
        _add_points(account, adjustment, rules, now, changes)
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


def _add_points(
    account: Account,
    adjustment: Adjustment,
    rules: ProgrammeRules,
    now: datetime,
    changes: Changes,
) -> None:
    """A lot available at once; a customer in debt repays it from the new points first."""
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
    if account.debt:
        settled = settle_debt(account.lots, account.debt, now)
        changes.move_lots(account, settled)
        account.debt = settled.debt
