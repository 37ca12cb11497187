"""A reference in-memory account driven only by the pure rules.

It plays the part the handlers and database will play (write a ledger entry and update lots
for every operation), so the tests can check that the rules keep the books balanced through
any sequence of purchases, returns, redemptions, cancellations, credits, adjustments and
clock jumps.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from services.points.domain.earning import DEFAULT_EARNING_RULES, points_for_order
from services.points.domain.errors import InsufficientPointsError
from services.points.domain.invariants import RedemptionRecord
from services.points.domain.ledger import EntryKind, LedgerEntry
from services.points.domain.lots import (
    Lot,
    accrual_lot,
    cancel_redemption,
    claw_back,
    credit_lot,
    expire_due_lots,
    redeem_points,
    settle_debt,
)
from services.points.domain.returns import OrderEarning, apply_return
from services.points.domain.tiers import Tier
from tests.unit.points.builders import line, purchase


@dataclass
class AccountBook:
    now: datetime
    customer_id: str = "customer-1"
    entries: list[LedgerEntry] = field(default_factory=list)
    lots: tuple[Lot, ...] = ()
    debt: int = 0
    redemptions: list[RedemptionRecord] = field(default_factory=list)
    orders: list[OrderEarning] = field(default_factory=list)

    def write(
        self, kind: EntryKind, points: int, reference: str, reason: str | None = None
    ) -> None:
        self.entries.append(
            LedgerEntry(
                sequence=len(self.entries) + 1,
                customer_id=self.customer_id,
                kind=kind,
                points=points,
                occurred_at=self.now,
                reference=reference,
                merchant_id="grocer",
                reason=reason,
            )
        )

    def buy(self, amount_minor: int) -> None:
        order_id = f"order-{len(self.orders)}"
        order = purchase(line(amount_minor), order_id=order_id, occurred_at=self.now)
        points = points_for_order(order, Tier.MEMBER, DEFAULT_EARNING_RULES).points
        lot_id = f"lot-{order_id}" if points else None
        self.orders.append(OrderEarning(order_id, points, amount_minor, lot_id=lot_id))
        if lot_id is not None:
            self.write(EntryKind.ACCRUAL, points, order_id)
            lot = accrual_lot(lot_id, points, self.now, "grocer", order_id)
            self._add_lot(lot)

    def give_back(self, order_index: int, refund_minor: int) -> None:
        if not self.orders:
            return
        index = order_index % len(self.orders)
        outcome = apply_return(self.orders[index], refund_minor, self.lots, self.now, self.debt)
        self.orders[index] = outcome.order
        self.lots, self.debt = outcome.clawback.lots, outcome.clawback.debt
        if outcome.points_reversed:
            self.write(EntryKind.REVERSAL, -outcome.points_reversed, outcome.order.order_id)

    def redeem(self, points: int) -> bool:
        try:
            movement = redeem_points(self.lots, points, self.now, self.debt)
        except InsufficientPointsError:
            return False
        redemption_id = f"redemption-{len(self.redemptions)}"
        self.lots = movement.lots
        self.redemptions.append(RedemptionRecord(redemption_id, self.now, points, movement.draws))
        self.write(EntryKind.REDEMPTION, -points, redemption_id)
        return True

    def cancel(self, redemption_index: int) -> None:
        open_ones = [i for i, r in enumerate(self.redemptions) if not r.cancelled]
        if not open_ones:
            return
        index = open_ones[redemption_index % len(open_ones)]
        record = self.redemptions[index]
        self.lots = cancel_redemption(self.lots, record.draws)
        self.redemptions[index] = replace(record, cancelled=True)
        self.write(EntryKind.REDEMPTION_CANCEL, record.points, record.redemption_id)
        self._settle()

    def credit(self, points: int, source: EntryKind = EntryKind.CREDIT) -> None:
        reference = f"{source}-{len(self.entries)}"
        reason = "goodwill" if source is EntryKind.ADJUSTMENT else None
        self.write(source, points, reference, reason)
        self._add_lot(credit_lot(f"lot-{reference}", points, self.now, reference, source=source))

    def deduct(self, points: int) -> None:
        clawback = claw_back(self.lots, points, self.now, self.debt)
        self.lots, self.debt = clawback.lots, clawback.debt
        self.write(EntryKind.ADJUSTMENT, -points, f"deduct-{len(self.entries)}", "correction")

    def wait(self, days: int) -> None:
        self.now += timedelta(days=days)
        movement = expire_due_lots(self.lots, self.now)
        self.lots = movement.lots
        for draw in movement.draws:
            self.write(EntryKind.EXPIRY, -draw.points, f"expiry-{draw.lot_id}")

    def _add_lot(self, lot: Lot) -> None:
        self.lots = (*self.lots, lot)
        self._settle()

    def _settle(self) -> None:
        if self.debt:
            settled = settle_debt(self.lots, self.debt, self.now)
            self.lots, self.debt = settled.lots, settled.debt
