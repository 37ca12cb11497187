"""Shortcuts on the accrual hot path give exactly what the general arithmetic gives."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic_core import TzInfo

from services.points.accounts.repository import wire_moment
from services.points.db import lines_from_json, lines_to_json
from services.points.domain.currency import CurrencyRates
from services.points.domain.earning import (
    UNWEIGHTED,
    Campaign,
    EarningRuleSet,
    ItemMultiplier,
    ItemScope,
    Purchase,
    exclusion,
    points_for_order,
)
from services.points.domain.returns import EarningLine
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


def _reference_points(order: Purchase, tier: Tier, rules: EarningRuleSet, today: int) -> int:
    """The formula as it was written before the integer shortcuts: every factor a Fraction,
    multiplied per order, one floor (the module docstring of `earning`, spelled out)."""
    campaigns = [c for c in rules.campaigns if c.applies_to(order.merchant_id, order.occurred_at)]
    factor = Fraction(rules.base_rate_for(order.merchant_id)) * Fraction(
        rules.tier_multipliers[tier]
    )
    for campaign in campaigns:
        factor *= Fraction(campaign.multiplier)
    rates = rules.currency_rates
    weighted = sum(rules.line_weight(x) * x.amount_minor for x in order.lines)
    face = sum(x.amount_minor for x in order.lines if rules.line_weight(x) > 0)
    if rules.minimum_order_minor:
        face_units = rates.to_programme_units(face, order.currency)
        programme_minor = face_units * 10 ** rates.exponent(rates.programme_currency)
        if programme_minor < rules.minimum_order_minor:
            return 0
    points = math.floor(rates.to_programme_units(weighted, order.currency) * factor)
    if rules.daily_cap_points is None:
        return points
    return max(min(points, rules.daily_cap_points - today), 0)


_decimals = st.builds(
    lambda units, exponent: Decimal(units).scaleb(-exponent),
    st.integers(min_value=0, max_value=5_000),
    st.integers(min_value=0, max_value=4),
)
_positive_decimals = _decimals.filter(lambda d: d > 0)
_MERCHANTS = ("grocer", "bookshop", "florist")
_SKUS = ("tea", "cake", "card", "soap")
_CATEGORIES = ("food", "gift-card", "home")


@st.composite
def _rules(draw: st.DrawFn) -> EarningRuleSet:
    scopes = draw(st.lists(st.sampled_from([*_SKUS, *_CATEGORIES]), unique=True, max_size=4))
    items = tuple(
        ItemMultiplier(ItemScope.SKU if key in _SKUS else ItemScope.CATEGORY, key, draw(_decimals))
        for key in scopes
    )
    campaigns = tuple(
        Campaign(
            f"c{i}",
            draw(_decimals),
            at(2025, 3, draw(st.integers(1, 5))),
            at(2025, 3, draw(st.integers(6, 9))),
            draw(st.sampled_from([None, *_MERCHANTS])),
        )
        for i in range(draw(st.integers(0, 3)))
    )
    return EarningRuleSet(
        currency_rates=CurrencyRates(
            "EUR",
            {"USD": draw(_positive_decimals), "JPY": draw(_positive_decimals)},
            draw(st.sampled_from([{}, {"USD": 3}, {"JPY": 2}])),
        ),
        base_rate=draw(_decimals),
        merchant_base_rates={
            m: draw(_decimals) for m in draw(st.sets(st.sampled_from(_MERCHANTS)))
        },
        tier_multipliers={tier: draw(_decimals) for tier in Tier},
        item_multipliers=items,
        campaigns=campaigns,
        minimum_order_minor=draw(st.sampled_from([0, 0, 1, 5_00, 50_00])),
        daily_cap_points=draw(st.sampled_from([None, None, 0, 10, 1_000])),
    )


_orders = st.builds(
    lambda lines, merchant, day, currency: purchase(
        *lines, merchant_id=merchant, occurred_at=at(2025, 3, day), currency=currency
    ),
    st.lists(
        st.builds(
            line,
            st.integers(min_value=0, max_value=1_000_000),
            st.integers(min_value=1, max_value=12),
            st.sampled_from(_SKUS),
            st.sampled_from([None, *_CATEGORIES]),
        ),
        min_size=1,
        max_size=6,
    ),
    st.sampled_from(_MERCHANTS),
    st.integers(min_value=1, max_value=10),
    st.sampled_from(["EUR", "USD", "JPY"]),
)


@settings(max_examples=500, deadline=None)
@given(
    rules=_rules(),
    orders=st.lists(_orders, min_size=1, max_size=4),
    tier=st.sampled_from(list(Tier)),
    today=st.integers(min_value=0, max_value=2_000),
)
def test_integer_arithmetic_gives_the_points_of_the_fraction_formula(
    rules: EarningRuleSet, orders: list[Purchase], tier: Tier, today: int
) -> None:
    # Several orders per rule version: the second one at a merchant reuses the cached factor.
    for order in orders:
        got = points_for_order(order, tier, rules, today).points
        assert got == _reference_points(order, tier, rules, today), (
            f"order {order} earns {got} points, the exact formula says otherwise"
        )


_ZONES = [
    UTC,
    timezone(timedelta(hours=5, minutes=45)),
    timezone(timedelta(hours=-9, minutes=-30)),
    TzInfo(0),
    TzInfo(8 * 3600),
    TzInfo(-(3 * 3600 + 1800)),
    ZoneInfo("Europe/Berlin"),  # offsets that change with the date: never looked up once
    ZoneInfo("America/St_Johns"),
]


@settings(max_examples=2_000)
@given(
    moment=st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    zone=st.sampled_from(_ZONES),
    fold=st.integers(0, 1),
)
def test_a_wire_moment_is_the_microseconds_the_datetime_arithmetic_gives(
    moment: datetime, zone: tzinfo, fold: int
) -> None:
    aware = moment.replace(tzinfo=zone, fold=fold)
    epoch = datetime(2000, 1, 1, tzinfo=UTC)
    assert wire_moment(aware) == (aware - epoch) // timedelta(microseconds=1)


def test_a_naive_moment_has_no_wire_moment() -> None:
    with pytest.raises(TypeError):
        wire_moment(datetime(2026, 12, 7, 12))


def test_unweighted_lines_are_stored_with_the_weight_one() -> None:
    lines = (
        EarningLine("a", 2, 150, UNWEIGHTED),
        EarningLine("b", 1, 99, Fraction(1)),  # equal to UNWEIGHTED, not the same object
        EarningLine("c", 3, 10, Fraction(3, 2)),
    )
    stored = lines_to_json(lines)
    assert stored is not None
    assert [line["weight"] for line in orjson.loads(stored)] == ["1", "1", "3/2"]
    assert lines_from_json(stored) == lines
