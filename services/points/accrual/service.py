"""Accrual: a purchase earns points (0 included), and rewards' credits add points.

`accrue_purchases` and `credit_points` take a run of consecutive events of their type (the
consumer's batch, deduplicated by event id): they lock the accounts the run touches, load
what the rules need in a few set-based queries, apply the events in order in memory, write
the changes back in a few statements and queue the outgoing events. An order or credit
seen before under another event id is a no-op when the content matches, and dead-lettered
when it does not.

Moments: rules, lots and tiers follow the event's own `occurred_at`, so a late event
earns what it would have earned on time; `as_of` (the later of `occurred_at` and the
consumer's clock) decides what is pending or available now, for the balances the
outgoing events carry.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache

from services.points.accrual.events import points_accrued, points_credited
from services.points.domain.assembly import assembler
from services.points.domain.book import Account, Changes, LedgerLine, ReturnRecord, StoredOrder
from services.points.domain.earning import (
    UNWEIGHTED,
    EarningRuleSet,
    earning_day,
    points_for_amount,
    points_for_lines,
)
from services.points.domain.errors import InvalidPurchaseError, PointsRuleError
from services.points.domain.ledger import EntryKind
from services.points.domain.lots import Lot, accrual_lot, credit_lot, settle_debt
from services.points.domain.programme import ProgrammeRules, RuleBook
from services.points.domain.returns import UNITEMISED, EarningLine, OrderEarning
from services.points.ledger.service import as_of, emit_all, rejected
from services.points.returns.service import apply_parked_return
from services.points.rules.service import rule_book
from services.points.uow import PointsUnitOfWork
from shared.contracts.envelope import EventEnvelope, derived_event_id, derived_id_text
from shared.contracts.pos import PurchaseCompleted
from shared.contracts.rewards import PointsCreditRequested
from shared.errors import RejectedEvent
from shared.money import currency_exponent
from shared.outbox import Outgoing

log = logging.getLogger(__name__)

# What every purchase builds, without the frozen classes' per-field `object.__setattr__`
# (see `domain.assembly`): each value is computed or checked here before.
_earning_line = assembler(EarningLine)
_ledger_line = assembler(LedgerLine)
_order_earning = assembler(OrderEarning)


@dataclass(slots=True)  # not frozen: built per purchase, and frozen init costs 3x
class PurchaseSetting:
    """What the handler loaded for one purchase."""

    rules: ProgrammeRules
    earned_today: int
    parked_returns: tuple[ReturnRecord, ...]
    as_of: datetime
    day: date | None = None  # the purchase's `earning_day`, when the caller knows it already
    # False when no rule version caps daily earning: then no daily total is kept, and the
    # purchase's `earning_day` is never needed.
    counts_daily: bool = True


async def accrue_purchases(
    uow: PointsUnitOfWork, events: Sequence[PurchaseCompleted], points_topic: str
) -> None:
    """purchase.completed -> accrual (0 points included), parked returns applied."""
    book = await rule_book(uow)
    accounts = await uow.accounts.lock_rows(e.customer_id for e in events)
    order_ids = [e.data.order_id for e in events]
    # Only the orders named (to tell a replay from a conflict): tiers move at settlement,
    # so a purchase needs none of the customer's other orders.
    orders = await uow.orders.load(accounts, order_ids)
    parked = _by_order((await uow.returns.load(parked_for=order_ids)).values())
    moments = _balance_moments(uow, events)
    await _attach_lots(uow, accounts, zip(events, moments, strict=True), parked)
    daily = await uow.orders.daily_points(_cap_days(book, events)) if book.has_daily_cap else {}
    changes, emitted = Changes(), []
    capped = book.has_daily_cap  # daily totals are kept only once some version caps them
    early = EarlyWrites(uow)
    final: list[StoredOrder] = []  # new orders nothing later in the run can change, unwritten
    try:
        for index, (event, moment) in enumerate(zip(events, moments, strict=True)):
            if not index % YIELD_EVERY and early.busy:
                await asyncio.sleep(0)  # the write in flight gets its next statement sent
            known = orders.get(event.data.order_id)
            if known is not None:
                _check_same_order(event, known)
                continue
            account = accounts[event.customer_id]
            rules = book.in_force(event.occurred_at)
            setting = PurchaseSetting(rules, 0, tuple(parked.get(event.data.order_id, ())), moment)
            if capped:
                setting.day = day = earning_day(rules.earning, event.occurred_at)
                key = (event.customer_id, day)
                setting.earned_today = daily.get(key, 0) + changes.daily_points[key]
            else:
                setting.counts_daily = False
            try:
                emitted += record_purchase(account, event, setting, changes)
            except PointsRuleError as error:
                raise rejected(event, error) from error
            order = orders[event.data.order_id] = account.orders[event.data.order_id]
            if account.unloaded_lots is not None:
                final.append(order)
                if len(final) == EARLY_WRITE_EVERY:
                    await early.write(accounts, final)
                    final = []
        if final:
            await early.write(accounts, final)  # the last chunk's, while the events encode
        await _emit_beside(early, uow, points_topic, emitted)
        await early.finish()
    except BaseException:
        await early.abandon()
        raise
    early.leave_out(changes)
    await uow.save(accounts, changes)


# Early writes (`EarlyWrites`): PostgreSQL idled while a batch of 4,000 purchases computed
# (~120 ms), then Python idled while the save wrote them (~270 ms a batch, `python -m bench
# points --events 60000`). A chunk's new lots and orders are written while the next chunk
# computes: the save fell to ~100 ms and steady accrual rose from 6.0-6.9k/s to 7.1-7.6k/s
# (runs alternated with the code before), for 3-5 µs more consumer CPU per purchase (the
# task and its yields). Chunks of 1,000: 500 left a shorter last write (2 ms wait instead
# of 27) but cost ~5 µs more CPU per purchase and gave 7.2k/s, not 7.6k/s. A yield every
# 100 purchases (~3.5 ms of Python) sends a chunk's second statement soon after the first
# one's reply.
EARLY_WRITE_EVERY = 1000
YIELD_EVERY = 100
# The outgoing events (~4 µs each) are encoded while the last chunk's write is in flight,
# with the same yield every ~2 ms.
EMIT_SLICE = 500


class EarlyWrites:
    """The new lots and orders of a run's accounts on lot totals, inserted while the rest
    of the run computes: one write task at a time on the unit of work's connection (it
    runs one statement at a time), awaited before the next, before the save, and on every
    failure, so that no statement is left running when the transaction ends.

    Only accounts on lot totals (`Account.unloaded_lots`): nothing may draw on their lots
    (`Changes.move_lots` refuses), and their orders can change only by a parked return,
    which loads the account's lots. So what is written early is final. Should that ever
    change, `leave_out` still keeps the end state: a lot or order written early and then
    touched is updated by the save like any stored one, not inserted again.
    """

    __slots__ = ("_lots", "_orders", "_task", "_uow")

    def __init__(self, uow: PointsUnitOfWork) -> None:
        self._uow = uow
        self._task: asyncio.Task[None] | None = None
        self._lots: set[str] = set()
        self._orders: set[str] = set()

    @property
    def busy(self) -> bool:
        return self._task is not None and not self._task.done()

    async def write(self, accounts: dict[str, Account], orders: list[StoredOrder]) -> None:
        """Start inserting `orders` and their lots, once the previous write has finished."""
        await self.finish()
        lots = []
        for order in orders:
            lot_id = order.earning.lot_id
            if lot_id is not None:
                lots.append((order.customer_id, _lot_of(accounts[order.customer_id], lot_id)))
        lots.sort(key=lambda pair: pair[1].lot_id)  # the save's order: by id
        self._lots.update(lot.lot_id for _, lot in lots)
        self._orders.update(order.order_id for order in orders)
        self._task = asyncio.create_task(
            self._insert(lots, sorted(orders, key=lambda order: order.order_id))
        )
        await asyncio.sleep(0)  # the task sends its first statement now, not at the next yield

    async def _insert(self, lots: list[tuple[str, Lot]], orders: list[StoredOrder]) -> None:
        await self._uow.accounts.insert_lots(lots)  # first: the orders' foreign key
        await self._uow.orders.insert_orders(orders)

    async def finish(self) -> None:
        """Wait for the write in flight; its error, if any, is the run's."""
        task, self._task = self._task, None
        if task is not None:
            await task

    async def abandon(self) -> None:
        """On a failure of the run: let the write in flight end before the transaction
        rolls back (its own error, if any, is dropped: the run's is the one to report).
        Cancelled while waiting, cancel the write too."""
        task, self._task = self._task, None
        if task is None:
            return
        try:
            await asyncio.wait([task])
        except asyncio.CancelledError:
            task.cancel()
            raise
        if not task.cancelled():
            task.exception()  # retrieved: no "exception was never retrieved" warning

    def leave_out(self, changes: Changes) -> None:
        """What the save must not insert again: the lots and orders written early."""
        changes.new_lots -= self._lots
        changes.new_orders -= self._orders


async def _emit_beside(
    early: EarlyWrites, uow: PointsUnitOfWork, topic: str, events: list[Outgoing]
) -> None:
    """`emit_all`, `EMIT_SLICE` events at a time, letting the write in flight go on."""
    for start in range(0, len(events), EMIT_SLICE):
        if start and early.busy:
            await asyncio.sleep(0)
        emit_all(uow, topic, events[start : start + EMIT_SLICE])


def _lot_of(account: Account, lot_id: str) -> Lot:
    """The run's new lot `lot_id` (an account on lot totals holds only the run's lots)."""
    for lot in reversed(account.lots):
        if lot.lot_id == lot_id:
            return lot
    raise LookupError(f"lot {lot_id} of order not among {account.customer_id}'s lots")


async def credit_points(
    uow: PointsUnitOfWork, events: Sequence[PointsCreditRequested], points_topic: str
) -> None:
    """points.credit_requested -> a lot available at once, applied once per credit id."""
    book = await rule_book(uow)
    accounts = await uow.accounts.lock(e.customer_id for e in events)
    applied = await uow.orders.credits([e.data.credit_id for e in events])
    changes, emitted = Changes(), []
    for event in events:
        seen = applied.get(event.data.credit_id)
        if seen is not None:
            if seen != (event.customer_id, event.data.points):
                raise RejectedEvent(
                    event,
                    "credit_conflict",
                    f"credit {event.data.credit_id} was already applied with other content",
                )
            continue
        rules = book.in_force(event.occurred_at)
        account = accounts[event.customer_id]
        emitted += record_credit(account, event, rules, as_of(uow, event), changes)
        applied[event.data.credit_id] = (event.customer_id, event.data.points)
    await uow.save(accounts, changes)
    emit_all(uow, points_topic, emitted)


def _balance_moments(uow: PointsUnitOfWork, events: Sequence[PurchaseCompleted]) -> list[datetime]:
    """Each purchase's `as_of`: the unit of work's `now` object itself, or the purchase's
    own later time. One comparison per purchase (an aware datetime of the contract's
    time zone against one of the standard library's costs two `utcoffset` calls), and
    `_attach_lots` tells most of them apart by identity."""
    now = uow.now
    # exactly `max(e.occurred_at, now)`, which gives the first of two equal moments
    return [now if now > e.occurred_at else e.occurred_at for e in events]


async def _attach_lots(
    uow: PointsUnitOfWork,
    accounts: dict[str, Account],
    purchases: Iterable[tuple[PurchaseCompleted, datetime]],
    parked: dict[str, list[ReturnRecord]],
) -> None:
    """Each customer's live lots, or only their totals when no purchase of the run draws
    on them and every purchase's balance is taken at the unit of work's `now`.

    Lots are drawn on to pay a debt from new points and by a parked return; and a purchase
    that occurred after `now` takes its balance at its own time, when other lots may have
    become available or expired. Every other purchase's `points.accrued` carries the
    balance at `now`: its new lots (in memory) plus the stored ones' totals at `now`
    (`Account.available_and_pending`), exactly what the restored lots would sum to.
    """
    now = uow.now
    drawn_on = {customer_id for customer_id, account in accounts.items() if account.debt}
    drawn_on.update(
        e.customer_id
        for e, moment in purchases
        if (moment is not now and moment > now) or e.data.order_id in parked
    )
    await uow.accounts.attach_live_lots(accounts[c] for c in drawn_on)
    await uow.accounts.attach_live_totals(
        (a for c, a in accounts.items() if c not in drawn_on), now
    )


def receipt_lines(
    event: PurchaseCompleted, rules: EarningRuleSet, exponent: int | None = None
) -> tuple[tuple[EarningLine, ...], int]:
    """The order's lines as they earn, and what was paid: order-currency minor units, and
    the weight each line's SKU or category gives it, looked up once per line (one pass,
    one object per line).

    An amount paid beyond the lines (a service charge) earns as one more line, under no
    SKU or category; lines adding up to MORE than was paid cannot be trusted to earn
    points and are refused. `exponent`: the order currency's, when the caller has it.
    """
    data = event.data
    if exponent is None:
        exponent = rules.currency_rates.exponent(data.currency)  # refuses a malformed code
    # Without item rules every line weighs 1: no lookup per line.
    weight_of = rules.weight_of if rules.item_multipliers else None
    lines = []
    itemised = 0
    for item in data.items:
        sku, quantity, price = item.sku, item.quantity, _minor(item.unit_price, exponent)
        if quantity <= 0 or price < 0:
            _refuse_line(sku, quantity, price)
        itemised += quantity * price
        weight = UNWEIGHTED if weight_of is None else weight_of(sku, item.category)
        lines.append(_earning_line(sku, quantity, price, weight))
    paid = _minor(data.amount, exponent)
    if itemised > paid:
        raise InvalidPurchaseError(
            f"order {data.order_id}: lines add up to {itemised} minor units, more than the "
            f"{paid} paid"
        )
    if paid > itemised:
        weight = UNWEIGHTED if weight_of is None else weight_of(UNITEMISED, None)
        lines.append(_earning_line(UNITEMISED, 1, paid - itemised, weight))
    return tuple(lines), paid


def record_purchase(
    account: Account, event: PurchaseCompleted, setting: PurchaseSetting, changes: Changes
) -> list[Outgoing]:
    """Accrue an order's points (0 included) and apply returns that waited for it.

    Every recorded order is saved and counted, whatever it earned. Tiers do not move here:
    an order counts for them when it settles (`settle_order`), net of its returns.
    """
    rules = setting.rules.earning
    data = event.data
    occurred_at = event.occurred_at  # aware: the contract's, and `accrual_lot` checks again
    # The exponent is looked up once (the lines, the amount and the order ask), and under
    # rules without item multipliers the order earns on what was paid, which its lines add
    # up to, with no weight looked up or summed per line: ~1.5 µs less per bench purchase
    # (`make_purchases`, 1-3 lines, in memory: 30.9 -> 29.0 µs, alternated runs).
    exponent = rules.currency_rates.exponent(data.currency)  # refuses a malformed code
    lines, paid = receipt_lines(event, rules, exponent)
    order_key = (data.merchant_id, occurred_at, data.currency)
    if rules.item_multipliers:
        earned = points_for_lines(lines, order_key, account.tier, rules, setting.earned_today)
    else:
        earned = points_for_amount(paid, order_key, account.tier, rules, setting.earned_today)
    window = rules.return_window_for(data.merchant_id)
    cause = str(event.event_id)  # both ids below derive from it: format the UUID once
    lot = None
    if earned.points > 0:
        lot = accrual_lot(
            derived_id_text(cause, "lot"),
            earned.points,
            occurred_at,
            data.merchant_id,
            data.order_id,
            window,
            rules.validity_months,
        )
        _grant(account, lot, event, changes, setting.as_of)
        if setting.counts_daily:
            day = setting.day or earning_day(rules, occurred_at)
            changes.daily_points[(account.customer_id, day)] += earned.points
    # Lines are kept with the weights they earned with, so a return of some of them takes
    # back what they earned under the rule version of the purchase, not of the return. An
    # order without receipt lines is kept without (one unweighted line, see `returns`).
    kept = lines if data.items else ()
    order = _new_order(account, event, (earned.points, paid, exponent), lot, rules, kept, window)
    changes.new_orders.add(order.order_id)
    first = _count_purchase(account, occurred_at, changes)
    events: list[Outgoing] = [
        points_accrued(cause, account, order, lot, earned, first, setting.as_of)
    ]
    if setting.parked_returns:  # rare: a return that arrived before its purchase
        for parked in sorted(setting.parked_returns, key=lambda r: (r.occurred_at, r.return_id)):
            events += apply_parked_return(account, order, parked, setting.as_of, changes)
    return events


def record_credit(
    account: Account,
    event: PointsCreditRequested,
    rules: ProgrammeRules,
    as_of: datetime,
    changes: Changes,
) -> list[Outgoing]:
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
        _ledger_line(  # LedgerLine(customer_id, kind, points, reference, occurred_at, ...)
            account.customer_id,
            kind,
            lot.points,
            lot.reference or lot.lot_id,
            event.occurred_at,
            lot.merchant_id,
            reason,
            None,  # actor: none, the event caused it
            event.event_id,
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
    earned_paid_exponent: tuple[int, int, int],
    lot: Lot | None,
    rules: EarningRuleSet,
    lines: tuple[EarningLine, ...],
    return_window: timedelta,
) -> StoredOrder:
    data = event.data
    points, paid, exponent = earned_paid_exponent
    amount_minor = order_amount_minor(event, paid, exponent)
    earning = _order_earning(  # OrderEarning(order_id, points, amount_minor, refunded, ...)
        data.order_id, points, amount_minor, 0, 0, lot.lot_id if lot else None, lines, ()
    )
    # By position, ~0.35 µs less than by keyword: StoredOrder(earning, customer_id,
    # merchant_id, event_id, occurred_at, currency, spend_minor, settles_at)
    order = StoredOrder(
        earning,
        account.customer_id,
        data.merchant_id,
        event.event_id,
        event.occurred_at,
        data.currency,
        rules.currency_rates.to_programme_minor(paid, data.currency),
        # the lot's pending date is this very moment: the addition is made once
        lot.pending_until if lot else event.occurred_at + return_window,
    )
    account.orders[data.order_id] = order
    return order


def order_amount_minor(event: PurchaseCompleted, paid: int, exponent: int) -> int:
    """The order's amount as its contract counts it (`data.amount_minor`, ISO exponent):
    `paid`, already read in the programme's `exponent` of the currency, unless the
    programme overrides the currency's exponent (reading the amount again costs more than
    the rest of the order)."""
    if exponent == _iso_exponent(event.data.currency):
        return paid
    return event.data.amount_minor


@lru_cache(maxsize=512)  # a bad code raises, and an exception is never cached
def _iso_exponent(currency: str) -> int:
    """`currency_exponent`, once per currency: every order asks (~0.15 µs saved)."""
    return currency_exponent(currency)


def _count_purchase(account: Account, occurred_at: datetime, changes: Changes) -> bool:
    """Count the purchase (the account is saved even when it earned nothing); True if first."""
    changes.accounts.add(account.customer_id)
    first = account.purchase_count == 0
    account.purchase_count += 1
    if account.first_purchase_at is None or occurred_at < account.first_purchase_at:
        account.first_purchase_at = occurred_at
    return first


def _check_same_order(event: PurchaseCompleted, known: StoredOrder) -> None:
    same = (
        known.customer_id == event.customer_id
        and known.merchant_id == event.data.merchant_id
        and known.earning.amount_minor == event.data.amount_minor
    )
    if not same:
        raise RejectedEvent(
            event,
            "order_conflict",
            f"order {known.order_id} was already recorded by event {known.event_id} "
            "with a different customer, merchant or amount",
        )
    log.info("order %s already recorded; event %s is a no-op", known.order_id, event.event_id)


def _by_order(records: Iterable[ReturnRecord]) -> dict[str, list[ReturnRecord]]:
    grouped: dict[str, list[ReturnRecord]] = {}
    for record in records:
        grouped.setdefault(record.order_id, []).append(record)
    return grouped


def _cap_days(book: RuleBook, events: Sequence[PurchaseCompleted]) -> list[tuple[str, date]]:
    return [
        (e.customer_id, earning_day(book.in_force(e.occurred_at).earning, e.occurred_at))
        for e in events
    ]


def _refuse_line(sku: str, quantity: int, unit_price_minor: int) -> None:
    """What `OrderLine` refuses: a line of no units or of a negative price."""
    if quantity <= 0:
        raise InvalidPurchaseError(f"line {sku} has quantity {quantity}")
    if unit_price_minor < 0:
        raise InvalidPurchaseError(f"line {sku} has a negative price")


def _minor(amount: Decimal, exponent: int) -> int:
    scaled = amount.scaleb(exponent)
    minor = int(scaled)  # truncates; the exact comparison below catches what it dropped
    if minor != scaled:
        raise InvalidPurchaseError(f"{amount} has more decimals than its currency allows")
    return minor
