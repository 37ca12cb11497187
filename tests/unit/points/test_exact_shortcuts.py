"""Shortcuts on the accrual hot path give exactly what the general arithmetic gives."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest

from services.points.domain.currency import CurrencyRates
from services.points.domain.earning import (
    Campaign,
    EarningRuleSet,
    ItemMultiplier,
    ItemScope,
    exclusion,
    points_for_order,
)
from services.points.domain.tiers import Tier
from tests.unit.points.builders import at, line, purchase

RATES = CurrencyRates("EUR", {"USD": Decimal("0.92"), "JPY": Decimal("0.0061")})


@pytest.mark.parametrize("amount_minor", [0, 1, 99, 100, 12_345, 10**15 + 7])
def test_programme_currency_needs_no_rate(amount_minor: int) -> None:
    # The general formula, spelled out: amount / 10^exponent x rate (1), rounded half-even.
    exact = Fraction(amount_minor, 100) * Fraction(1)
    assert RATES.to_programme_units(amount_minor, "EUR") == exact
    assert RATES.to_programme_minor(amount_minor, "EUR") == round(exact * 100)


def test_other_currencies_still_convert_and_round_half_even() -> None:
    assert RATES.to_programme_units(1_000, "USD") == Fraction(92, 10)
    assert RATES.to_programme_minor(25, "USD") == 23  # 0.25 x 0.92 = 0.23
    assert RATES.to_programme_minor(10_000, "JPY") == 61_00  # no minor units: 10,000 yen


def test_weighted_and_unweighted_lines_floor_once_over_the_exact_total() -> None:
    rules = EarningRuleSet(
        base_rate=Decimal("1.1"),
        item_multipliers=(
            exclusion(ItemScope.CATEGORY, "gift-card"),
            ItemMultiplier(ItemScope.SKU, "tea", Decimal("1.5")),
        ),
        campaigns=(Campaign("x3", Decimal(3), at(2025, 3, 1), at(2025, 3, 9)),),
    )
    order = purchase(
        line(3_33, sku="tea"),
        line(5_00, sku="card", category="gift-card"),
        line(1_01, quantity=3),
    )
    earned = points_for_order(order, Tier.GOLD, rules)
    weighted = Fraction(3_33) * Fraction(3, 2) + 3 * 1_01
    factor = Fraction(11, 10) * Fraction(3, 2) * 3
    assert earned.points == int(weighted / 100 * factor)  # floor of a positive exact value
    assert earned.points == 39 and earned.campaign_ids == ("x3",)
