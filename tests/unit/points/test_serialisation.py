"""Value objects survive a JSON round trip, as the database layer will store them."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from pydantic import TypeAdapter

from services.points.domain.currency import CurrencyRates
from services.points.domain.earning import (
    Campaign,
    EarningRuleSet,
    ItemMultiplier,
    ItemScope,
    exclusion,
)
from services.points.domain.invariants import RedemptionRecord
from services.points.domain.ledger import EntryKind, LedgerEntry
from services.points.domain.lots import LotDraw, accrual_lot
from services.points.domain.returns import OrderEarning
from services.points.domain.tiers import QualifyingPurchase, TierPolicy
from tests.unit.points.builders import at

RULES = EarningRuleSet(
    effective_from=at(2025, 6, 1, 0),
    currency_rates=CurrencyRates("EUR", {"USD": Decimal("0.92")}, {"ISK": 2}),
    merchant_base_rates={"bookshop": Decimal(2)},
    item_multipliers=(
        exclusion(ItemScope.CATEGORY, "gift-card"),
        ItemMultiplier(ItemScope.SKU, "tea", Decimal("1.5")),
    ),
    campaigns=(Campaign("x2", Decimal(2), at(2025, 6, 1), at(2025, 6, 8), "grocer"),),
    minimum_order_minor=5_00,
    daily_cap_points=1_000,
    merchant_return_window_days={"furniture": 30},
    timezone="Europe/Paris",
)

VALUES: list[Any] = [
    RULES,
    accrual_lot("lot-1", 120, at(2025, 6, 2), "grocer", "order-1"),
    LedgerEntry(1, "c-1", EntryKind.ADJUSTMENT, -5, at(2025, 6, 3), "adj-1", None, "ticket 7"),
    OrderEarning("order-1", 120, 120_00, refunded_minor=30_00, reversed_points=30, lot_id="l"),
    RedemptionRecord("r-1", at(2025, 6, 3), 10, (LotDraw("lot-1", 10),), cancelled=True),
    TierPolicy(),
    QualifyingPurchase("order-1", at(2025, 6, 2), 120_00, refunded_minor=30_00),
]


@pytest.mark.parametrize("value", VALUES, ids=lambda value: type(value).__name__)
def test_json_round_trip_gives_the_same_value(value: Any) -> None:
    adapter: TypeAdapter[Any] = TypeAdapter(type(value))
    restored = adapter.validate_json(adapter.dump_json(value))
    assert restored == value, f"{type(value).__name__} changed when stored as JSON and read back"


def test_rule_set_stored_as_plain_json() -> None:
    stored = TypeAdapter(EarningRuleSet).dump_python(RULES, mode="json")
    assert stored["tier_multipliers"]["platinum"] == "2.0", "multipliers stay exact strings"
    assert stored["item_multipliers"][0] == {
        "scope": "category",
        "key": "gift-card",
        "multiplier": "0",
    }
