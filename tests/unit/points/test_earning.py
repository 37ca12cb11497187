"""Earning rules: points for an order, floored once, from the rule version in force."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.points.domain.currency import CurrencyRates
from services.points.domain.earning import (
    DEFAULT_EARNING_RULES,
    Campaign,
    EarningRuleSet,
    ItemMultiplier,
    ItemScope,
    OrderLine,
    Purchase,
    earning_day,
    exclusion,
    points_for_order,
    rule_set_in_force,
)
from services.points.domain.errors import (
    InvalidPurchaseError,
    InvalidRuleError,
    NaiveDatetimeError,
    UnknownCurrencyError,
)
from services.points.domain.tiers import Tier
from tests.unit.points.builders import at, line, purchase

RULES = DEFAULT_EARNING_RULES


def earned(order: Purchase, tier: Tier = Tier.MEMBER, rules: EarningRuleSet = RULES) -> int:
    return points_for_order(order, tier, rules).points


class TestDefaults:
    def test_one_point_per_whole_unit_of_eligible_amount(self) -> None:
        assert earned(purchase(line(12_99))) == 12, "12.99 should earn 12 points by default"

    def test_points_are_floored_once_per_order_not_per_item(self) -> None:
        order = purchase(line(50, sku="a"), line(50, sku="b"), line(50, sku="c"))
        assert earned(order) == 1, "three items of 0.50 make 1.50: the order earns 1 point"

    def test_quantity_times_unit_price(self) -> None:
        assert earned(purchase(line(2_50, quantity=4))) == 10, "4 x 2.50 should earn 10 points"

    @pytest.mark.parametrize(
        ("tier", "expected"),
        [(Tier.MEMBER, 10), (Tier.SILVER, 12), (Tier.GOLD, 15), (Tier.PLATINUM, 20)],
    )
    def test_tier_multipliers(self, tier: Tier, expected: int) -> None:
        got = earned(purchase(line(10_00)), tier)
        assert got == expected, f"a {tier} customer spending 10.00 should earn {expected}"

    def test_outcome_records_what_went_into_the_points(self) -> None:
        outcome = points_for_order(purchase(line(10_00)), Tier.GOLD, RULES)
        assert outcome.tier_multiplier == Decimal("1.5")
        assert outcome.campaign_ids == ()
        assert not outcome.capped and not outcome.below_minimum


class TestConfigurableRules:
    def test_base_rate_per_merchant(self) -> None:
        rules = EarningRuleSet(merchant_base_rates={"bookshop": Decimal(2)})
        assert earned(purchase(line(10_00), merchant_id="bookshop"), rules=rules) == 20
        assert earned(purchase(line(10_00), merchant_id="grocer"), rules=rules) == 10, (
            "a merchant without its own rate should keep the programme base rate"
        )

    def test_configured_tier_multipliers(self) -> None:
        rules = EarningRuleSet(
            tier_multipliers={
                Tier.MEMBER: Decimal(1),
                Tier.SILVER: Decimal(1),
                Tier.GOLD: Decimal(3),
                Tier.PLATINUM: Decimal(4),
            }
        )
        assert earned(purchase(line(10_00)), Tier.GOLD, rules) == 30

    def test_gift_cards_earn_nothing(self) -> None:
        rules = EarningRuleSet(item_multipliers=(exclusion(ItemScope.CATEGORY, "gift-card"),))
        order = purchase(line(20_00, sku="coffee"), line(50_00, sku="gc", category="gift-card"))
        assert earned(order, rules=rules) == 20, "only the 20.00 of coffee should earn points"

    def test_sku_rule_wins_over_category_rule(self) -> None:
        rules = EarningRuleSet(
            item_multipliers=(
                ItemMultiplier(ItemScope.CATEGORY, "wine", Decimal(2)),
                exclusion(ItemScope.SKU, "cooking-wine"),
            )
        )
        order = purchase(
            line(10_00, sku="bordeaux", category="wine"),
            line(10_00, sku="cooking-wine", category="wine"),
        )
        assert earned(order, rules=rules) == 20, "bordeaux doubles, cooking wine is excluded"

    def test_category_weights_the_amount_before_the_single_floor(self) -> None:
        rules = EarningRuleSet(
            item_multipliers=(ItemMultiplier(ItemScope.CATEGORY, "tea", Decimal(2)),)
        )
        order = purchase(line(70, sku="green", category="tea"), line(70, sku="cup"))
        assert earned(order, rules=rules) == 2, (
            "0.70 x 2 + 0.70 = 2.10 earns 2; flooring each line would have given only 1"
        )

    def test_campaign_doubles_points_at_its_merchant_during_its_week(self) -> None:
        week = Campaign("spring-x2", Decimal(2), at(2025, 3, 1, 0), at(2025, 3, 8, 0), "grocer")
        rules = EarningRuleSet(campaigns=(week,))
        inside = purchase(line(10_00), merchant_id="grocer", occurred_at=at(2025, 3, 5))
        first_moment = purchase(line(10_00), merchant_id="grocer", occurred_at=at(2025, 3, 1, 0))
        after = purchase(line(10_00), merchant_id="grocer", occurred_at=at(2025, 3, 8, 0))
        elsewhere = purchase(line(10_00), merchant_id="bookshop", occurred_at=at(2025, 3, 5))
        assert earned(inside, rules=rules) == 20, "the campaign should double points"
        assert earned(first_moment, rules=rules) == 20, "the campaign starts at its start"
        assert earned(after, rules=rules) == 10, "the campaign end is excluded"
        assert earned(elsewhere, rules=rules) == 10, "another merchant is not boosted"
        assert points_for_order(inside, Tier.MEMBER, rules).campaign_ids == ("spring-x2",)

    def test_campaigns_running_together_multiply(self) -> None:
        rules = EarningRuleSet(
            campaigns=(
                Campaign("x2", Decimal(2), at(2025, 3, 1), at(2025, 3, 9), "grocer"),
                Campaign("all-partners", Decimal("1.5"), at(2025, 3, 1), at(2025, 3, 9)),
            )
        )
        order = purchase(line(10_00), merchant_id="grocer")
        assert earned(order, Tier.GOLD, rules) == 45, "10 x 1.5 (gold) x 2 x 1.5 = 45"

    def test_order_below_minimum_earns_nothing(self) -> None:
        rules = EarningRuleSet(minimum_order_minor=5_00)
        small = points_for_order(purchase(line(4_99)), Tier.MEMBER, rules)
        assert small.points == 0 and small.below_minimum, "4.99 is below the 5.00 minimum"
        assert earned(purchase(line(5_00)), rules=rules) == 5, "exactly the minimum earns"

    def test_excluded_lines_do_not_help_reach_the_minimum(self) -> None:
        rules = EarningRuleSet(
            minimum_order_minor=5_00,
            item_multipliers=(exclusion(ItemScope.CATEGORY, "gift-card"),),
        )
        order = purchase(line(3_00, sku="tea"), line(10_00, sku="gc", category="gift-card"))
        assert earned(order, rules=rules) == 0, "3.00 of tea plus a gift card is below 5.00"

    def test_daily_cap_limits_what_one_order_adds(self) -> None:
        rules = EarningRuleSet(daily_cap_points=100)
        outcome = points_for_order(purchase(line(50_00)), Tier.MEMBER, rules, earned_today=90)
        assert outcome.points == 10, "only 10 points were left under the daily cap of 100"
        assert outcome.points_before_cap == 50 and outcome.capped
        over = points_for_order(purchase(line(50_00)), Tier.MEMBER, rules, earned_today=120)
        assert over.points == 0, "a customer already over the cap earns nothing more"

    def test_daily_cap_day_is_the_programme_local_day(self) -> None:
        rules = EarningRuleSet(timezone="Asia/Shanghai")
        day = earning_day(rules, at(2025, 3, 1, 17))
        assert day.isoformat() == "2025-03-02", "17:00 UTC is already the next day in Shanghai"

    def test_return_window_per_merchant(self) -> None:
        rules = EarningRuleSet(merchant_return_window_days={"furniture": 30})
        assert rules.return_window_for("furniture") == timedelta(days=30)
        assert rules.return_window_for("grocer") == timedelta(days=14), "default is 14 days"


class TestCurrencies:
    RATES = CurrencyRates(
        programme_currency="EUR",
        rates={"USD": Decimal("0.92"), "JPY": Decimal("0.0062"), "KWD": Decimal("3")},
    )

    def earned_in(self, amount_minor: int, currency: str) -> int:
        rules = EarningRuleSet(currency_rates=self.RATES)
        return earned(purchase(line(amount_minor), currency=currency), rules=rules)

    def test_foreign_currency_converted_at_programme_rate(self) -> None:
        assert self.earned_in(10_00, "USD") == 9, "10.00 USD is 9.20 EUR: 9 points"

    def test_zero_decimal_currency(self) -> None:
        assert self.earned_in(1500, "JPY") == 9, "1500 yen (no minor unit) is 9.30 EUR"

    def test_three_decimal_currency(self) -> None:
        assert self.earned_in(1_500, "KWD") == 4, "1.500 KWD is 4.50 EUR"

    def test_unknown_currency_is_refused_for_the_dead_letter_topic(self) -> None:
        with pytest.raises(UnknownCurrencyError) as refused:
            self.earned_in(10_00, "GBP")
        assert refused.value.currency == "GBP"
        assert refused.value.code == "unknown_currency"

    def test_exponent_override(self) -> None:
        rates = CurrencyRates(rates={"ISK": Decimal("0.0066")}, exponent_overrides={"ISK": 2})
        assert rates.exponent("ISK") == 2
        assert rates.to_programme_minor(1_000_00, "ISK") == 6_60


class TestRuleVersions:
    V1 = EarningRuleSet(effective_from=at(2025, 1, 1, 0))
    V2 = EarningRuleSet(effective_from=at(2025, 6, 1, 0), base_rate=Decimal(2))

    def test_version_in_force_at_purchase_time_applies(self) -> None:
        assert rule_set_in_force([self.V2, self.V1], at(2025, 5, 31, 23)) is self.V1
        assert rule_set_in_force([self.V1, self.V2], at(2025, 6, 1, 0)) is self.V2, (
            "a version applies from its effective_from included"
        )

    def test_defaults_apply_before_any_version(self) -> None:
        assert rule_set_in_force([self.V1], at(2024, 12, 31)) is DEFAULT_EARNING_RULES

    def test_replay_gives_the_same_points_after_rules_change(self) -> None:
        order = purchase(line(10_00), occurred_at=at(2025, 5, 1))
        first = earned(order, rules=rule_set_in_force([self.V1], order.occurred_at))
        replayed = earned(order, rules=rule_set_in_force([self.V1, self.V2], order.occurred_at))
        assert first == replayed == 10, "a later rule version must not change a past order"

    def test_two_versions_at_the_same_moment_are_ambiguous(self) -> None:
        twin = EarningRuleSet(effective_from=self.V1.effective_from, base_rate=Decimal(3))
        with pytest.raises(InvalidRuleError):
            rule_set_in_force([self.V1, twin], at(2025, 2, 1))


class TestRefusedInput:
    def test_float_multiplier_is_refused(self) -> None:
        with pytest.raises(InvalidRuleError):
            # The float a careless caller passes anyway: refused at run time too.
            ItemMultiplier(ItemScope.SKU, "x", 1.5)  # type: ignore[arg-type]

    def test_naive_purchase_time_is_refused(self) -> None:
        with pytest.raises(NaiveDatetimeError):
            purchase(line(1_00), occurred_at=datetime(2025, 3, 1, 12))

    def test_missing_tier_multiplier_is_refused(self) -> None:
        with pytest.raises(InvalidRuleError):
            EarningRuleSet(tier_multipliers={Tier.MEMBER: Decimal(1)})

    def test_campaign_ending_before_it_starts_is_refused(self) -> None:
        with pytest.raises(InvalidRuleError):
            Campaign("oops", Decimal(2), at(2025, 3, 8), at(2025, 3, 1))

    def test_duplicate_item_rule_is_refused(self) -> None:
        twice = (exclusion(ItemScope.SKU, "gc"), ItemMultiplier(ItemScope.SKU, "gc", Decimal(2)))
        with pytest.raises(InvalidRuleError):
            EarningRuleSet(item_multipliers=twice)

    def test_unknown_time_zone_is_refused(self) -> None:
        with pytest.raises(InvalidRuleError):
            EarningRuleSet(timezone="Mars/Olympus")

    @pytest.mark.parametrize(("quantity", "price"), [(0, 1_00), (1, -1_00)])
    def test_impossible_lines_are_refused(self, quantity: int, price: int) -> None:
        with pytest.raises(InvalidPurchaseError):
            OrderLine("x", quantity, price)

    def test_bad_currency_code_is_refused(self) -> None:
        with pytest.raises(InvalidRuleError):
            purchase(line(1_00), currency="euro")


prices = st.lists(st.integers(min_value=0, max_value=100_000), min_size=1, max_size=8)


@given(prices=prices, tier=st.sampled_from(list(Tier)))
def test_single_floor_is_exact_and_never_below_per_line_floors(
    prices: list[int], tier: Tier
) -> None:
    order = purchase(*(line(p, sku=f"sku-{i}") for i, p in enumerate(prices)))
    got = earned(order, tier)
    multiplier = Fraction(RULES.tier_multipliers[tier])
    assert got == math.floor(Fraction(sum(prices), 100) * multiplier), "not floor(amount x rate)"
    per_line = sum(math.floor(Fraction(p, 100) * multiplier) for p in prices)
    assert got >= per_line, "flooring once per order must never give less than per item"


@given(prices=prices)
def test_line_order_does_not_change_points(prices: list[int]) -> None:
    lines = [line(p, sku=f"sku-{i}") for i, p in enumerate(prices)]
    forward = earned(purchase(*lines), Tier.SILVER)
    backward = earned(purchase(*reversed(lines)), Tier.SILVER)
    assert forward == backward, "the points of an order must not depend on its line order"


def test_effective_from_default_is_timezone_aware() -> None:
    assert DEFAULT_EARNING_RULES.effective_from.tzinfo is UTC
