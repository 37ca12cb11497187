"""The bytes accrual puts on the points topic, pinned: consumers downstream parse them.

Each case runs a purchase (or a credit) through the use case's in-memory step and
takes what it emits as the outbox writes it; the contract validates those bytes and
writes them again the same. The expected bytes were captured from
the implementation that validated every event with its contract model and encoded it
with `model_dump(mode="json")`; a faster builder or encoder must give the same bytes,
field order, number and time formats included.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from services.points.accrual.service import PurchaseSetting, record_credit, record_purchase
from services.points.domain.book import Account, Changes
from services.points.domain.earning import Campaign, EarningRuleSet
from services.points.domain.programme import DEFAULT_PROGRAMME_RULES, ProgrammeRules
from services.points.domain.tiers import Tier
from shared.contracts.pos import PurchaseCompleted
from shared.contracts.registry import decode_event, encode_event
from shared.contracts.rewards import PointsCreditRequested
from tests.support.outgoing import wire

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CAMPAIGN_RULES = ProgrammeRules(
    earning=EarningRuleSet(
        campaigns=(
            Campaign("spring-x2", Decimal(2), NOW - timedelta(days=30), NOW + timedelta(days=30)),
        ),
        daily_cap_points=50,
    )
)


def _event(number: int, event_type: str, occurred_at: str, data: dict[str, Any]) -> Any:
    return decode_event(
        {
            "event_id": str(uuid.UUID(int=number)),
            "type": event_type,
            "version": 1,
            "occurred_at": occurred_at,
            "source": "pos-test",
            "customer_id": "customer-42",
            "data": data,
        }
    )


def _purchase(number: int, occurred_at: str, amount: str, items: list[Any]) -> PurchaseCompleted:
    data = {
        "order_id": f"order-{number}",
        "merchant_id": "grocer",
        "store_id": "store-1",
        "amount": amount,
        "currency": "EUR",
        "items": items,
    }
    event = _event(number, "purchase.completed", occurred_at, data)
    assert isinstance(event, PurchaseCompleted)
    return event


def _item(sku: str, quantity: int, price: str) -> dict[str, Any]:
    return {"sku": sku, "category": "food", "quantity": quantity, "unit_price": price}


def _accrued(
    rules: ProgrammeRules, earned_today: int, count: int, *purchases: PurchaseCompleted
) -> list[bytes]:
    account = Account("customer-42", tier=Tier.SILVER, purchase_count=count, lifetime_earned=70)
    changes = Changes()
    emitted = []
    for event in purchases:
        setting = PurchaseSetting(rules, earned_today, (), max(event.occurred_at, NOW))
        emitted += record_purchase(account, event, setting, changes)
    return wire(emitted)


def _credited() -> list[bytes]:
    account = Account("customer-42", debt=30, lifetime_earned=70)
    data = {"credit_id": "credit-1", "points": 120, "reason": "compensation: dish_wait_time"}
    event = _event(9, "points.credit_requested", "2026-03-01T11:59:59.5+00:00", data)
    assert isinstance(event, PointsCreditRequested)
    emitted = record_credit(account, event, DEFAULT_PROGRAMME_RULES, NOW, Changes())
    return wire(emitted)


def _built(case: str) -> list[bytes]:
    if case == "earning and not earning, UTC":
        return _accrued(
            DEFAULT_PROGRAMME_RULES,
            0,
            2,
            _purchase(1, "2026-02-28T09:30:00Z", "42.50", [_item("tea", 2, "12.25")]),
            _purchase(2, "2026-03-01T10:00:00+00:00", "0.40", []),
        )
    if case == "campaign, capped, offset and microseconds":
        return _accrued(
            CAMPAIGN_RULES,
            10,
            0,
            _purchase(3, "2026-02-28T23:30:00.000250+01:00", "99.99", []),
        )
    return _credited()


CASES = [
    (
        "earning and not earning, UTC",
        [
            (
                b'{"event_id":"78e88ac5-2849-5064-b680-82f809e3cdd3","type":"points.accrued"'
                b',"version":1,"occurred_at":"2026-02-28T09:30:00Z","source":"points"'
                b',"customer_id":"customer-42","data":{"available":0,"pending":53,"debt":0'
                b',"lifetime_earned":123,"purchase_count":3,"first_purchase":false,"tier":"silver"'
                b',"order_id":"order-1","merchant_id":"grocer","points":53'
                b',"pending_until":"2026-03-14T09:30:00Z","expires_at":"2027-03-14T09:30:00Z"'
                b',"campaign_ids":[],"capped":false}}'
            ),
            (
                b'{"event_id":"c0a45d17-ef62-57a6-88e4-8c36df5166b4","type":"points.accrued"'
                b',"version":1,"occurred_at":"2026-03-01T10:00:00Z","source":"points"'
                b',"customer_id":"customer-42","data":{"available":0,"pending":53,"debt":0'
                b',"lifetime_earned":123,"purchase_count":4,"first_purchase":false,"tier":"silver"'
                b',"order_id":"order-2","merchant_id":"grocer","points":0,"pending_until":null'
                b',"expires_at":null,"campaign_ids":[],"capped":false}}'
            ),
        ],
    ),
    (
        "campaign, capped, offset and microseconds",
        [
            (
                b'{"event_id":"aba920ba-2d4d-5444-b5b3-3a0eeca74d39","type":"points.accrued"'
                b',"version":1,"occurred_at":"2026-02-28T23:30:00.000250+01:00","source":"points"'
                b',"customer_id":"customer-42","data":{"available":0,"pending":40,"debt":0'
                b',"lifetime_earned":110,"purchase_count":1,"first_purchase":true,"tier":"silver"'
                b',"order_id":"order-3","merchant_id":"grocer","points":40'
                b',"pending_until":"2026-03-14T23:30:00.000250+01:00"'
                b',"expires_at":"2027-03-14T23:30:00.000250+01:00","campaign_ids":["spring-x2"]'
                b',"capped":true}}'
            ),
        ],
    ),
    (
        "credit paying a debt",
        [
            (
                b'{"event_id":"12a33fcc-54be-5649-b5a7-e5f70ed72c10","type":"points.credited"'
                b',"version":1,"occurred_at":"2026-03-01T11:59:59.500000Z","source":"points"'
                b',"customer_id":"customer-42","data":{"available":90,"pending":0,"debt":0'
                b',"lifetime_earned":190,"purchase_count":0,"first_purchase":false,"tier":"member"'
                b',"credit_id":"credit-1","points":120,"reason":"compensation: dish_wait_time"'
                b',"merchant_id":null}}'
            ),
        ],
    ),
]


@pytest.mark.parametrize(("case", "expected"), CASES, ids=[name for name, _ in CASES])
def test_accrual_events_keep_their_bytes(case: str, expected: list[bytes]) -> None:
    built = _built(case)
    assert built == expected, f"the bytes of '{case}' on the points topic changed"
    assert [encode_event(decode_event(value)) for value in built] == expected, "as validated"
