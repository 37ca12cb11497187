"""How each business event changes a customer's books, in memory (no I/O).

Handlers load the books, call these functions, and write the `Changes` back. Every
function here applies the pure domain rules and records each movement twice, as the
domain asks: a ledger line (the books) and lot counters (where the points are).

Moments: rules, lots and tiers follow the event's own `occurred_at`, so a late event
earns what it would have earned on time; `as_of` (the later of `occurred_at` and the
consumer's clock) decides what is pending or available now, for claw-backs and for the
balances the outgoing events carry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from services.points.book import Account, Changes, LedgerLine, ReturnRecord, StoredOrder
from services.points.domain.currency import CurrencyRates
from services.points.domain.earning import (
    EarningRuleSet,
    OrderLine,
    Purchase,
    earning_day,
    points_for_order,
)
from services.points.domain.errors import InvalidPurchaseError
from services.points.domain.ledger import EntryKind
from services.points.domain.lots import Lot, LotMovement, accrual_lot, credit_lot, settle_debt
from services.points.domain.lots import expire_due_lots as expire_lots_due
from services.points.domain.moments import add_months
from services.points.domain.returns import (
    UNITEMISED,
    EarningLine,
    OrderEarning,
    apply_return,
)
from services.points.domain.tiers import (
    Tier,
    qualifying_activity,
    tier_after_settlement,
    tier_at_yearly_review,
)
from services.points.events import (
    points_accrued,
    points_credited,
    points_expired,
    points_reversed,
    points_settled,
    tier_changed,
)
from services.points.rules import ProgrammeRules
from shared.contracts.envelope import EventEnvelope, derived_event_id
from shared.contracts.points import TierChangeReason
from shared.contracts.pos import PurchaseCompleted
from shared.contracts.rewards import PointsCreditRequested

TIER_TERM_MONTHS = 12  # a tier reached is kept at least until its yearly review
_RANK = {tier: tier.rank for tier in Tier}  # Tier.rank searches a tuple; this runs per purchase


@dataclass(frozen=True)
class PurchaseSetting:
    """What the handler loaded for one purchase."""

    rules: ProgrammeRules
    earned_today: int
    parked_returns: tuple[ReturnRecord, ...]
    as_of: datetime


def purchase_from_event(event: PurchaseCompleted, rates: CurrencyRates) -> Purchase:
    """The order as the earning rules see it.

    Lines earn with their own category/SKU weights; an amount paid beyond the lines (a
    service charge) earns as one unweighted line; lines adding up to MORE than was paid
    cannot be trusted to earn points and are refused.
    """
    data = event.data
    exponent = rates.exponent(data.currency)
    lines = [
        OrderLine(item.sku, item.quantity, _minor(item.unit_price, exponent), item.category)
        for item in data.items
    ]
    paid = _minor(data.amount, exponent)
    itemised = sum(line.amount_minor for line in lines)
    if itemised > paid:
        raise InvalidPurchaseError(
            f"order {data.order_id}: lines add up to {itemised} minor units, more than the "
            f"{paid} paid"
        )
    if paid > itemised:
        lines.append(OrderLine(UNITEMISED, 1, paid - itemised))
    return Purchase(data.order_id, data.merchant_id, event.occurred_at, data.currency, tuple(lines))


def record_purchase(
    account: Account, event: PurchaseCompleted, setting: PurchaseSetting, changes: Changes
) -> list[EventEnvelope]:
    """Accrue an order's points (0 included) and apply returns that waited for it.

    Every recorded order is saved and counted, whatever it earned. Tiers do not move here:
    an order counts for them when it settles (`settle_order`), net of its returns.
    """
    rules = setting.rules.earning
    purchase = purchase_from_event(event, rules.currency_rates)
    earned = points_for_order(purchase, account.tier, rules, setting.earned_today)
    lot = None
    if earned.points > 0:
        lot = accrual_lot(
            str(derived_event_id(event.event_id, "lot")),
            earned.points,
            event.occurred_at,
            purchase.merchant_id,
            purchase.order_id,
            rules.return_window_for(purchase.merchant_id),
            rules.validity_months,
        )
        _grant(account, lot, event, changes, setting.as_of)
        day = earning_day(rules, event.occurred_at)
        changes.daily_points[(account.customer_id, day)] += earned.points
    order = _new_order(account, event, earned.points, lot, rules, purchase)
    changes.new_orders.add(order.order_id)
    first = _count_purchase(account, event.occurred_at, changes)
    events: list[EventEnvelope] = [
        points_accrued(event.event_id, account, order, lot, earned, first, setting.as_of)
    ]
    for parked in sorted(setting.parked_returns, key=lambda r: (r.occurred_at, r.return_id)):
        events += apply_parked_return(account, order, parked, setting.as_of, changes)
    return events


def return_mismatch(order: StoredOrder, record: ReturnRecord) -> str | None:
    """Why a return cannot belong to its order (None when it can)."""
    if order.customer_id != record.customer_id:
        return f"order {order.order_id} belongs to another customer"
    if order.currency != record.currency:
        return f"order {order.order_id} was paid in {order.currency}, refund is {record.currency}"
    return None


def apply_parked_return(
    account: Account, order: StoredOrder, record: ReturnRecord, as_of: datetime, changes: Changes
) -> list[EventEnvelope]:
    """A return that waited for its order: applied now, or rejected if it cannot belong."""
    changes.touched_returns[record.return_id] = record
    mismatch = return_mismatch(order, record)
    if mismatch is not None:
        record.status, record.rejection, record.applied_at = "rejected", mismatch, as_of
        return []
    return reverse_for_return(account, order, record, as_of, changes)


def reverse_for_return(
    account: Account, order: StoredOrder, record: ReturnRecord, as_of: datetime, changes: Changes
) -> list[EventEnvelope]:
    """Take back the order's points in proportion to everything refunded so far.

    From the order's own lot first, then pending lots, then available ones; what the lots
    cannot cover becomes debt, so the balance shows negative rather than losing a point.
    """
    outcome = apply_return(
        order.earning, record.refunded_minor, account.lots, as_of, account.debt, record.items
    )
    order.earning = outcome.order
    changes.touched_orders.add(order.order_id)
    changes.move_lots(account, outcome.clawback)
    account.debt = outcome.clawback.debt
    reversed_now = outcome.points_reversed
    record.status, record.points_reversed, record.applied_at = "applied", reversed_now, as_of
    if reversed_now == 0:
        return []
    changes.write(
        LedgerLine(
            account.customer_id,
            EntryKind.REVERSAL,
            -reversed_now,
            record.return_id,
            record.occurred_at,
            merchant_id=order.merchant_id,
            event_id=record.event_id,
        )
    )
    account.lifetime_earned -= reversed_now
    return [
        points_reversed(
            record.event_id,
            account,
            order,
            record.return_id,
            reversed_now,
            record.occurred_at,
            as_of,
        )
    ]


def record_credit(
    account: Account,
    event: PointsCreditRequested,
    rules: ProgrammeRules,
    as_of: datetime,
    changes: Changes,
) -> list[EventEnvelope]:
    """Credit points requested by rewards: a lot available at once."""
    data = event.data
    lot = credit_lot(
        str(derived_event_id(event.event_id, "lot")),
        data.points,
        event.occurred_at,
        data.credit_id,
        data.merchant_id,
        validity_months=rules.earning.validity_months,
    )
    _grant(account, lot, event, changes, as_of, reason=data.reason)
    credit = {
        "credit_id": data.credit_id,
        "points": data.points,
        "reason": data.reason,
        "merchant_id": data.merchant_id,
    }
    return [points_credited(event.event_id, account, credit, event.occurred_at, as_of)]


def expire_claimed_lots(
    account: Account, lot_ids: set[str], now: datetime, changes: Changes
) -> list[EventEnvelope]:
    """Expire what is left of the claimed lots whose expiry has come, soonest first."""
    events: list[EventEnvelope] = []
    due = sorted((lot for lot in account.lots if lot.lot_id in lot_ids), key=_expiry_key)
    for lot in due:
        movement = expire_lots_due([lot], now)
        if not movement.draws:
            continue
        points = movement.points
        reference = f"{lot.lot_id}:{lot.expired}"
        changes.move_lots(account, _merge(account.lots, movement))
        changes.write(
            LedgerLine(
                account.customer_id,
                EntryKind.EXPIRY,
                -points,
                reference,
                lot.expires_at,
                merchant_id=lot.merchant_id,
            )
        )
        events.append(points_expired(account, lot, points, reference, now))
    return events


def review_tier(
    account: Account, rules: ProgrammeRules, review_at: datetime, as_of: datetime, changes: Changes
) -> list[EventEnvelope]:
    """The yearly review: the tier the window supports, but at most one level down."""
    purchases = account.qualifying_purchases()
    previous = account.tier
    account.tier = tier_at_yearly_review(previous, purchases, review_at, rules.tiers)
    account.next_review_at = (
        add_months(review_at, TIER_TERM_MONTHS) if account.tier is not Tier.MEMBER else None
    )
    changes.accounts.add(account.customer_id)
    if account.tier is previous:
        return []
    account.tier_changed_at = review_at
    activity = qualifying_activity(purchases, review_at, rules.tiers)
    cause = f"tier-review:{account.customer_id}:{review_at.isoformat()}"
    programme = rules.earning.currency_rates
    return [
        tier_changed(
            cause,
            account,
            previous,
            TierChangeReason.YEARLY_REVIEW,
            activity,
            programme,
            review_at,
            as_of,
        )
    ]


def _grant(
    account: Account,
    lot: Lot,
    event: EventEnvelope,
    changes: Changes,
    as_of: datetime,
    reason: str | None = None,
) -> None:
    """A new lot and its ledger entry; a customer in debt repays it from the new points."""
    kind = EntryKind.ACCRUAL if lot.source is EntryKind.ACCRUAL else EntryKind.CREDIT
    changes.add_lot(account, lot)
    changes.write(
        LedgerLine(
            account.customer_id,
            kind,
            lot.points,
            lot.reference or lot.lot_id,
            event.occurred_at,
            merchant_id=lot.merchant_id,
            reason=reason,
            event_id=event.event_id,
        )
    )
    account.lifetime_earned += lot.points
    if account.debt:
        settled = settle_debt(account.lots, account.debt, as_of)
        changes.move_lots(account, settled)
        account.debt = settled.debt


def _new_order(
    account: Account,
    event: PurchaseCompleted,
    points: int,
    lot: Lot | None,
    rules: EarningRuleSet,
    purchase: Purchase,
) -> StoredOrder:
    data = event.data
    # Lines are kept with the weights they earned with, so a return of some of them takes
    # back what they earned under the rule version of the purchase, not of the return.
    lines = (
        tuple(
            EarningLine(line.sku, line.quantity, line.unit_price_minor, rules.line_weight(line))
            for line in purchase.lines
        )
        if data.items
        else ()
    )
    earning = OrderEarning(
        data.order_id, points, data.amount_minor, lot_id=lot.lot_id if lot else None, lines=lines
    )
    order = StoredOrder(
        earning=earning,
        customer_id=account.customer_id,
        merchant_id=data.merchant_id,
        event_id=event.event_id,
        occurred_at=event.occurred_at,
        currency=data.currency,
        spend_minor=rules.currency_rates.to_programme_minor(purchase.amount_minor, data.currency),
        settles_at=event.occurred_at + rules.return_window_for(data.merchant_id),
    )
    account.orders[order.order_id] = order
    return order


def _count_purchase(account: Account, occurred_at: datetime, changes: Changes) -> bool:
    """Count the purchase (the account is saved even when it earned nothing); True if first."""
    changes.accounts.add(account.customer_id)
    first = account.purchase_count == 0
    account.purchase_count += 1
    if account.first_purchase_at is None or occurred_at < account.first_purchase_at:
        account.first_purchase_at = occurred_at
    return first


def settle_order(
    account: Account, order: StoredOrder, rules: ProgrammeRules, as_of: datetime, changes: Changes
) -> list[EventEnvelope]:
    """The order's return window ended: count what stayed of it, then raise the tier.

    Judged at the order's own `settles_at` (not at the job's clock), so a job that runs late
    gives the same answer. Returns after this keep reversing points but change neither the
    settled totals nor the tier until the yearly review, which counts net settled spend.
    """
    at = order.settles_at or order.occurred_at
    fully_returned = order.earning.fully_returned
    kept = order.earning.points - order.earning.reversed_points
    first = not fully_returned and account.settled_purchase_count == 0
    account.settled_points += kept
    if not fully_returned:
        account.settled_purchase_count += 1
    order.settled_at = at
    changes.settled_orders.add(order.order_id)
    changes.accounts.add(account.customer_id)
    programme = rules.earning.currency_rates
    settled = points_settled(account, order, kept, fully_returned, first, programme, as_of)
    return [settled, *_raise_tier(account, order, rules, at, as_of)]


def _raise_tier(
    account: Account, order: StoredOrder, rules: ProgrammeRules, at: datetime, as_of: datetime
) -> list[EventEnvelope]:
    """Move up when the window ending at this settlement qualifies for more."""
    policy = rules.tiers
    higher = [t for t in policy.thresholds if _RANK[t.tier] > _RANK[account.tier]]
    if not higher or len(account.orders) < higher[0].min_purchases:
        return []  # cannot qualify yet: spares the window count on most settlements
    purchases = account.qualifying_purchases()
    previous = account.tier
    reached = tier_after_settlement(previous, purchases, at, policy)
    if reached is previous:
        return []
    account.tier, account.tier_changed_at = reached, at
    account.next_review_at = add_months(at, TIER_TERM_MONTHS)
    activity = qualifying_activity(purchases, at, policy)
    programme = rules.earning.currency_rates
    cause = f"settlement:{order.order_id}"
    return [
        tier_changed(
            cause, account, previous, TierChangeReason.QUALIFIED, activity, programme, at, as_of
        )
    ]


def _merge(lots: tuple[Lot, ...], movement: LotMovement) -> LotMovement:
    """A movement computed on some lots, applied to the whole account."""
    updated = {lot.lot_id: lot for lot in movement.lots}
    return LotMovement(tuple(updated.get(lot.lot_id, lot) for lot in lots), movement.draws)


def _expiry_key(lot: Lot) -> tuple[datetime, str]:
    return (lot.expires_at, lot.lot_id)


def _minor(amount: Decimal, exponent: int) -> int:
    scaled = amount.scaleb(exponent)
    if scaled != scaled.to_integral_value():
        raise InvalidPurchaseError(f"{amount} has more decimals than its currency allows")
    return int(scaled)
