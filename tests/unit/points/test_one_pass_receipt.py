"""The accrual reads a receipt in one pass (`receipt_lines` + `points_for_lines`): it must
earn, keep and refuse exactly what the two-pass reading did, which built an `OrderLine`
per line to earn with (`points_for_order`) and then an `EarningLine` per line to keep.

The two-pass reading is spelled out below as it was (`_two_pass`), and both run on the
same decoded events under random rule versions: item weights and exclusions, campaigns,
minimum amounts, daily caps, tiers, foreign currencies, exponent overrides, receipts
that add up to less, exactly or more than was paid, and sub-minor prices.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.points.accrual.service import order_amount_minor, receipt_lines
from services.points.domain.currency import CurrencyRates
from services.points.domain.earning import (
    Campaign,
    EarnedPoints,
    EarningRuleSet,
    ItemMultiplier,
    ItemScope,
    OrderLine,
    Purchase,
    points_for_amount,
    points_for_lines,
    points_for_order,
)
from services.points.domain.errors import InvalidPurchaseError, InvalidRuleError, PointsRuleError
from services.points.domain.returns import UNITEMISED, EarningLine
from services.points.domain.tiers import Tier
from shared.contracts.pos import PurchaseCompleted
from shared.contracts.registry import decode_event

AT = datetime(2026, 3, 5, 12, 0, tzinfo=UTC)
SKUS = ("tea", "card", "bread", "soap")
CATEGORIES = ("food", "gift-card", "household")
# EUR and USD: 2 decimals, JPY: 0, KWD: 3; GBP has no rate (an unknown currency)
CURRENCIES = ("EUR", "USD", "JPY", "KWD", "GBP")
MULTIPLIERS = (Decimal(0), Decimal("0.5"), Decimal(1), Decimal("1.5"), Decimal(2), Decimal(3))

Outcome = tuple[EarnedPoints, tuple[EarningLine, ...], int, int] | tuple[type[Exception], str]


def _two_pass(event: PurchaseCompleted, rules: EarningRuleSet, tier: Tier, today: int) -> Outcome:
    """The reading before the one pass: `purchase_from_event`, `points_for_order`, then the
    kept lines as `_new_order` built them, the spend stored for tiers and the amount."""
    data = event.data
    try:
        exponent = rules.currency_rates.exponent(data.currency)
        lines = [
            OrderLine(item.sku, item.quantity, _minor(item.unit_price, exponent), item.category)
            for item in data.items
        ]
        paid = _minor(data.amount, exponent)
        itemised = sum(line.amount_minor for line in lines)
        if itemised > paid:
            raise InvalidPurchaseError(
                f"order {data.order_id}: lines add up to {itemised} minor units, more than"
                f" the {paid} paid"
            )
        if paid > itemised:
            lines.append(OrderLine(UNITEMISED, 1, paid - itemised))
        purchase = Purchase(
            data.order_id, data.merchant_id, event.occurred_at, data.currency, tuple(lines)
        )
        earned = points_for_order(purchase, tier, rules, today)
        kept = (
            tuple(
                EarningLine(x.sku, x.quantity, x.unit_price_minor, rules.line_weight(x))
                for x in purchase.lines
            )
            if data.items
            else ()
        )
        spend = rules.currency_rates.to_programme_minor(purchase.amount_minor, data.currency)
    except PointsRuleError as error:
        return type(error), str(error)
    return earned, kept, spend, data.amount_minor


def _one_pass(event: PurchaseCompleted, rules: EarningRuleSet, tier: Tier, today: int) -> Outcome:
    """The reading as `record_purchase` makes it: the exponent looked up once, and an
    order under rules without item multipliers earning on its total."""
    data = event.data
    try:
        exponent = rules.currency_rates.exponent(data.currency)
        lines, paid = receipt_lines(event, rules, exponent)
        order = (data.merchant_id, event.occurred_at, data.currency)
        if rules.item_multipliers:
            earned = points_for_lines(lines, order, tier, rules, today)
        else:
            earned = points_for_amount(paid, order, tier, rules, today)
        spend = rules.currency_rates.to_programme_minor(paid, data.currency)
    except PointsRuleError as error:
        return type(error), str(error)
    return earned, (lines if data.items else ()), spend, order_amount_minor(event, paid, exponent)


def _minor(amount: Decimal, exponent: int) -> int:
    scaled = amount.scaleb(exponent)
    minor = int(scaled)
    if minor != scaled:
        raise InvalidPurchaseError(f"{amount} has more decimals than its currency allows")
    return minor


@st.composite
def _rules(draw: st.DrawFn) -> EarningRuleSet:
    keys = [(ItemScope.SKU, sku) for sku in SKUS] + [(ItemScope.CATEGORY, c) for c in CATEGORIES]
    chosen = draw(st.lists(st.sampled_from(keys), unique=True, max_size=4))
    campaigns = draw(st.lists(st.sampled_from(MULTIPLIERS[1:]), max_size=2))
    overrides = draw(st.sampled_from([{}, {"USD": 3}, {"EUR": 0}, {"KWD": 2}]))
    return EarningRuleSet(
        currency_rates=CurrencyRates(
            "EUR",
            {"USD": Decimal("0.92"), "JPY": Decimal("0.0061"), "KWD": Decimal("2.97")},
            exponent_overrides=overrides,
        ),
        base_rate=draw(st.sampled_from([Decimal(1), Decimal("1.1"), Decimal("0.25")])),
        item_multipliers=tuple(
            ItemMultiplier(scope, key, draw(st.sampled_from(MULTIPLIERS))) for scope, key in chosen
        ),
        campaigns=tuple(
            Campaign(f"c{n}", m, AT - timedelta(days=1), AT + timedelta(days=1), merchant_id=None)
            for n, m in enumerate(campaigns)
        ),
        minimum_order_minor=draw(st.sampled_from([0, 0, 500, 5_000])),
        daily_cap_points=draw(st.sampled_from([None, None, 0, 40])),
    )


def _money(minor: int, decimals: int) -> str:
    return str(Decimal(minor).scaleb(-decimals)) if decimals else str(minor)


@st.composite
def _events(draw: st.DrawFn) -> PurchaseCompleted:
    currency = draw(st.sampled_from(CURRENCIES))
    decimals = {"JPY": 0, "KWD": 3}.get(currency, 2)
    items, total = [], 0
    for _ in range(draw(st.integers(0, 4))):
        price, quantity = draw(st.integers(0, 99_999)), draw(st.integers(1, 5))
        total += price * quantity
        items.append(
            {
                "sku": draw(st.sampled_from(SKUS)),
                "category": draw(st.sampled_from(CATEGORIES)),
                "quantity": quantity,
                "unit_price": _money(price, decimals),
            }
        )
    paid = max(total + draw(st.sampled_from([0, 0, 0, 1, 250, -1, -300])), 0)
    event = decode_event(
        {
            "event_id": str(uuid.UUID(int=draw(st.integers(0, 2**64)))),
            "type": "purchase.completed",
            "version": 1,
            "occurred_at": AT.isoformat(),
            "source": "pos-test",
            "customer_id": "customer-1",
            "data": {
                "order_id": "order-1",
                "merchant_id": "grocer",
                "store_id": "store-1",
                "amount": _money(paid, decimals),
                "currency": currency,
                "items": items,
            },
        }
    )
    assert isinstance(event, PurchaseCompleted)
    return event


@settings(max_examples=400, deadline=None)
@given(
    event=_events(),
    rules=_rules(),
    tier=st.sampled_from(list(Tier)),
    today=st.sampled_from([0, 10, 39, 100]),
)
def test_one_pass_earns_keeps_and_refuses_what_two_passes_did(
    event: PurchaseCompleted, rules: EarningRuleSet, tier: Tier, today: int
) -> None:
    expected = _two_pass(event, rules, tier, today)
    assert _one_pass(event, rules, tier, today) == expected, (
        "the one-pass reading of a receipt earned, kept or refused something else"
    )


def test_the_comparison_sees_each_outcome() -> None:
    """The property above compares points, kept lines, spend, and refusals: each occurs."""
    rules = EarningRuleSet(item_multipliers=(ItemMultiplier(ItemScope.SKU, "tea", Decimal(2)),))
    seen: list[Any] = []
    for amount, items in (
        ("12.00", [{"sku": "tea", "category": "food", "quantity": 2, "unit_price": "5.00"}]),
        ("9.00", [{"sku": "tea", "category": "food", "quantity": 2, "unit_price": "5.00"}]),
        ("7.50", []),
    ):
        event = decode_event(
            {
                "event_id": str(uuid.UUID(int=7)),
                "type": "purchase.completed",
                "version": 1,
                "occurred_at": AT.isoformat(),
                "source": "pos-test",
                "customer_id": "customer-1",
                "data": {
                    "order_id": "order-1",
                    "merchant_id": "grocer",
                    "store_id": "store-1",
                    "amount": amount,
                    "currency": "EUR",
                    "items": items,
                },
            }
        )
        assert isinstance(event, PurchaseCompleted)
        seen.append(_one_pass(event, rules, Tier.MEMBER, 0))
        assert seen[-1] == _two_pass(event, rules, Tier.MEMBER, 0)
    earned, kept, spend, _ = seen[0]
    assert (earned.points, spend) == (22, 1200)  # 2 x 5.00 x 2 + 2.00 unitemised
    assert [line.sku for line in kept] == ["tea", UNITEMISED]
    assert seen[1] == (
        InvalidPurchaseError,
        "order order-1: lines add up to 1000 minor units, more than the 900 paid",
    )
    earned, kept, spend, _ = seen[2]
    assert (earned.points, kept, spend) == (7, (), 750)


def test_an_order_total_cannot_earn_under_rules_that_weigh_its_lines() -> None:
    rules = EarningRuleSet(item_multipliers=(ItemMultiplier(ItemScope.SKU, "tea", Decimal(2)),))
    with pytest.raises(InvalidRuleError):
        points_for_amount(1_000, ("grocer", AT, "EUR"), Tier.MEMBER, rules)
