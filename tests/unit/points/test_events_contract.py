"""Outgoing events, built the cheap way, are still exactly what the contract and replay need.

`points.accrued` is written as its bytes with only its integer bounds checked, and every
event carries the lean `available_and_pending` snapshot instead of the full balance.
These tests check what is built against the published contract (validated and byte for
byte), the ids against their derivation (replay dedupe depends on it), and the lean
balance against the full one.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError

from services.points.accrual.events import points_accrued
from services.points.accrual.service import PurchaseSetting, record_purchase
from services.points.domain.balances import available_and_pending, balance_at
from services.points.domain.book import Account, Changes, StoredOrder
from services.points.domain.earning import EarnedPoints
from services.points.domain.errors import UnknownCurrencyError
from services.points.domain.ledger import EntryKind
from services.points.domain.lots import Lot, accrual_lot
from services.points.domain.programme import DEFAULT_PROGRAMME_RULES
from services.points.domain.returns import OrderEarning
from services.points.domain.tiers import Tier
from services.points.ledger.service import rejecting
from shared.contracts.envelope import derived_event_id
from shared.contracts.points import PointsAccrued
from shared.contracts.pos import PurchaseCompleted
from shared.contracts.registry import decode_event, encode_event
from shared.errors import RejectedEvent
from shared.outbox import Outgoing
from tests.support.outgoing import wire
from tests.unit.points.builders import at

NOW = at(2026, 3, 1)


def _lot(
    number: int,
    *,
    earned: datetime,
    points: int = 100,
    redeemed: int = 0,
    clawed_back: int = 0,
    expired: int = 0,
    source: EntryKind = EntryKind.ACCRUAL,
) -> Lot:
    return Lot(
        lot_id=str(uuid.UUID(int=number)),
        source=source,
        points=points,
        earned_at=earned,
        pending_until=earned + timedelta(days=14),
        expires_at=earned + timedelta(days=14 + 365),
        merchant_id="grocer",
        reference=f"order-{number}",
        redeemed=redeemed,
        clawed_back=clawed_back,
        expired=expired,
    )


LOTS = (
    _lot(1, earned=NOW - timedelta(days=3)),  # pending
    _lot(2, earned=NOW - timedelta(days=14)),  # available from exactly now
    _lot(3, earned=NOW - timedelta(days=40), redeemed=30),  # available, partly spent
    _lot(4, earned=NOW - timedelta(days=2), clawed_back=100),  # pending, all clawed back
    _lot(5, earned=NOW - timedelta(days=14 + 365)),  # expires exactly now: counts for 0
    _lot(6, earned=NOW - timedelta(days=500), expired=20),  # long expired
    _lot(7, earned=NOW - timedelta(days=100), redeemed=60, expired=60),  # over-drawn counters
)


@pytest.mark.parametrize("debt", [0, 35, 10_000])
@pytest.mark.parametrize("offset_days", [-30, 0, 1, 13, 14, 200, 400, 900])
def test_lean_balance_matches_the_full_balance(debt: int, offset_days: int) -> None:
    now = NOW + timedelta(days=offset_days)
    full = balance_at(LOTS, now, debt)
    assert available_and_pending(LOTS, now, debt) == (full.available, full.pending)


def test_lean_balance_refuses_a_naive_moment() -> None:
    with pytest.raises(ValueError, match="now"):
        available_and_pending(LOTS, datetime(2026, 3, 1))


def _purchase(
    customer: str, order_id: str, amount: str, occurred_at: datetime
) -> PurchaseCompleted:
    document = {
        "event_id": str(uuid.uuid4()),
        "type": "purchase.completed",
        "version": 1,
        "occurred_at": occurred_at.isoformat(),
        "source": "pos-test",
        "customer_id": customer,
        "data": {
            "order_id": order_id,
            "merchant_id": "grocer",
            "store_id": "store-1",
            "amount": amount,
            "currency": "EUR",
            "items": [],
        },
    }
    event = decode_event(document)
    assert isinstance(event, PurchaseCompleted)
    return event


def _validated(built: Outgoing) -> PointsAccrued:
    """The event as the contract reads its bytes; it writes them again the same."""
    (value,) = wire([built])
    validated = decode_event(value)
    assert isinstance(validated, PointsAccrued)
    assert encode_event(validated) == value
    return validated


def test_accrued_events_built_on_the_hot_path_satisfy_the_contract() -> None:
    account = Account("customer-7", tier=Tier.SILVER, lots=LOTS[:3], debt=5)
    setting = PurchaseSetting(DEFAULT_PROGRAMME_RULES, 0, (), NOW)
    changes = Changes()
    earning = _purchase("customer-7", "order-a", "42.50", NOW - timedelta(days=1))
    nothing = _purchase("customer-7", "order-b", "0.40", NOW)  # earns 0 points: no lot
    events = record_purchase(account, earning, setting, changes)
    events += record_purchase(account, nothing, setting, changes)
    accrued = [_validated(e) for e in events]
    assert [e.data.points for e in accrued] == [53, 0]  # floor(42.50 x 1.25), then nothing
    assert accrued[0].data.pending_until is not None and accrued[1].data.pending_until is None
    assert accrued[0].data.first_purchase and not accrued[1].data.first_purchase


def test_accrued_event_carries_the_books_and_its_derived_id() -> None:
    account = Account("customer-8", debt=0, purchase_count=3, lifetime_earned=250)
    occurred_at = datetime(2026, 2, 27, 9, 30, tzinfo=UTC)
    lot = accrual_lot(str(uuid.UUID(int=99)), 12, occurred_at, "grocer", "order-c")
    account.lots = (lot,)
    order = StoredOrder(
        OrderEarning("order-c", 12, 12_34, lot_id=lot.lot_id),
        "customer-8",
        "grocer",
        uuid.UUID(int=5),
        occurred_at,
        "EUR",
        12_34,
    )
    earned = EarnedPoints(12, 24, Decimal(1), ("double-week",), False, True)
    event = _validated(points_accrued(uuid.UUID(int=5), account, order, lot, earned, False, NOW))
    assert event.event_id == derived_event_id(uuid.UUID(int=5), "points.accrued")
    assert event.occurred_at == occurred_at and event.customer_id == "customer-8"
    assert event.data.campaign_ids == ["double-week"] and event.data.capped
    assert (event.data.available, event.data.pending) == (0, 12)
    assert event.data.expires_at == lot.expires_at


def test_books_breaking_a_contract_bound_fail_loudly() -> None:
    account = Account("customer-9", debt=-1)  # impossible books: the contract says debt >= 0
    occurred_at = NOW - timedelta(days=1)
    order = StoredOrder(
        OrderEarning("order-d", 0, 10),
        "customer-9",
        "grocer",
        uuid.UUID(int=6),
        occurred_at,
        "EUR",
        10,
    )
    earned = EarnedPoints(0, 0, Decimal(1), (), False, False)
    with pytest.raises(ValidationError, match="debt"):
        points_accrued(uuid.UUID(int=6), account, order, None, earned, True, NOW)


def test_a_broken_rule_rejects_only_its_event_and_other_errors_pass_through() -> None:
    event = _purchase("customer-1", "order-x", "1.00", NOW)
    with pytest.raises(RejectedEvent) as rejected, rejecting(event):
        raise UnknownCurrencyError("XTS")
    assert (rejected.value.code, rejected.value.event_id) == (
        "unknown_currency",
        str(event.event_id),
    )
    assert isinstance(rejected.value.__cause__, UnknownCurrencyError)
    with pytest.raises(KeyError), rejecting(event):
        raise KeyError("not a business rule: a bug, never dead-lettered as the event's fault")
    with rejecting(event):
        pass  # nothing broken, nothing raised
