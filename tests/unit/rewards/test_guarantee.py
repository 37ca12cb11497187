"""Satisfaction-guarantee policy: tiers, accumulation, top-up once per breach."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.rewards.domain.errors import InvalidRuleError, MeasurementMismatchError
from services.rewards.domain.guarantee import (
    CompensationSet,
    GrantedCompensation,
    GuaranteePolicy,
    GuaranteeTier,
    Measurement,
    MeasureUnit,
    PointsCompensation,
    PromiseKind,
    RefundCompensation,
    VoucherCompensation,
    breach_key,
    evaluate,
    restaurant_dish_wait_policy,
    tier_payment_key,
    top_up,
)

DISH = restaurant_dish_wait_policy("hotel-restaurant")
ORDER = 120_00  # 120.00 in minor units

FRUIT = frozenset({"fruit-plate"})


def room_policy() -> GuaranteePolicy:
    return GuaranteePolicy(
        merchant_id="hotel",
        promise=PromiseKind.ROOM_NOT_AS_BOOKED,
        unit=MeasureUnit.BREACH,
        tiers=(GuaranteeTier(0, (RefundCompensation.multiple_of_order(1),)),),
    )


@pytest.mark.parametrize(
    ("minutes", "expected"),
    [
        (0, CompensationSet()),
        (10, CompensationSet()),
        (11, CompensationSet(1, FRUIT)),
        (15, CompensationSet(1, FRUIT)),
        (16, CompensationSet(2, FRUIT, 0, 24_00)),
        (20, CompensationSet(2, FRUIT, 0, 24_00)),
        (21, CompensationSet(3, FRUIT, 0, 240_00)),
        (90, CompensationSet(3, FRUIT, 0, 240_00)),
    ],
)
def test_seeded_dish_wait_policy_pays_each_tier(minutes: int, expected: CompensationSet) -> None:
    owed = evaluate(DISH, Measurement.minutes(minutes), ORDER)
    assert owed == expected, f"a dish {minutes} min late on a 120.00 order should earn {expected}"


def test_exactly_on_the_promise_is_kept_and_one_second_over_is_a_breach() -> None:
    on_time = evaluate(DISH, Measurement.seconds(600), ORDER)
    late = evaluate(DISH, Measurement.seconds(601), ORDER)
    assert on_time.is_empty, "a dish served at exactly 10 minutes keeps the promise"
    assert late.vouchers == FRUIT, "a dish at 10 min 1 s is over 10 minutes: fruit plate owed"


def test_tiers_are_cumulative_but_the_highest_tier_sets_the_refund() -> None:
    owed = evaluate(DISH, Measurement.minutes(25), ORDER)
    assert "fruit-plate" in owed.vouchers, "the fruit plate of tier 1 must stay at tier 3 (also)"
    assert owed.refund_minor == 2 * ORDER, "over 20 minutes pays double the order, not 2x + 20%"


def test_points_line_is_set_by_the_highest_tier() -> None:
    policy = GuaranteePolicy(
        "m",
        PromiseKind.CHECK_IN_TIME,
        MeasureUnit.MINUTES,
        (
            GuaranteeTier(3, (PointsCompensation(100),)),
            GuaranteeTier(10, (PointsCompensation(500), VoucherCompensation("late-checkout"))),
        ),
    )
    owed = evaluate(policy, Measurement.minutes(11), 0)
    assert owed.points == 500, "the check-in points credit at tier 2 is 500 in total"
    assert owed.vouchers == {"late-checkout"}, "tier 2 also adds the late-checkout voucher"


def test_yes_no_breach_policy() -> None:
    assert evaluate(room_policy(), Measurement.breach(True), 80_00).refund_minor == 80_00, (
        "a room not as booked refunds the booking"
    )
    assert evaluate(room_policy(), Measurement.breach(False), 80_00).is_empty, (
        "a room as booked earns nothing"
    )


def test_duration_measured_against_a_yes_no_promise_is_refused() -> None:
    with pytest.raises(MeasurementMismatchError):
        evaluate(room_policy(), Measurement.minutes(5), 80_00)
    with pytest.raises(MeasurementMismatchError):
        evaluate(DISH, Measurement.breach(True), 80_00)


def test_refund_rounds_half_up_in_favour_of_the_customer() -> None:
    assert RefundCompensation.share_of_order(2_000).amount_minor(103) == 21, (
        "20% of 1.03 is 0.206, paid as 0.21"
    )
    assert RefundCompensation.share_of_order(5_000).amount_minor(1) == 1, "half a cent rounds up"


@pytest.mark.parametrize(
    "bad_policy",
    [
        lambda: GuaranteePolicy("m", PromiseKind.DISH_WAIT_TIME, MeasureUnit.MINUTES, ()),
        lambda: GuaranteePolicy(
            "m",
            PromiseKind.DISH_WAIT_TIME,
            MeasureUnit.MINUTES,
            (
                GuaranteeTier(15, (VoucherCompensation("a"),)),
                GuaranteeTier(10, (VoucherCompensation("b"),)),
            ),
        ),
        lambda: GuaranteePolicy(
            "m",
            PromiseKind.ROOM_NOT_AS_BOOKED,
            MeasureUnit.BREACH,
            (GuaranteeTier(1, (VoucherCompensation("a"),)),),
        ),
        lambda: GuaranteePolicy(
            "m",
            PromiseKind.DISH_WAIT_TIME,
            MeasureUnit.MINUTES,
            (GuaranteeTier(10, (VoucherCompensation("a"),)),),
            claim_window=timedelta(0),
        ),
        lambda: GuaranteeTier(10, ()),
        lambda: GuaranteeTier(10, (PointsCompensation(1), PointsCompensation(2))),
        lambda: PointsCompensation(0),
        lambda: RefundCompensation(0),
        lambda: Measurement.minutes(-1),
        lambda: Measurement(2, MeasureUnit.BREACH),
    ],
)
def test_inconsistent_policies_are_refused(bad_policy: Callable[[], object]) -> None:
    with pytest.raises(InvalidRuleError):
        bad_policy()


def test_negative_order_amount_is_refused() -> None:
    with pytest.raises(InvalidRuleError):
        evaluate(DISH, Measurement.minutes(30), -1)


def test_top_up_pays_only_the_difference_to_the_higher_tier() -> None:
    first = evaluate(DISH, Measurement.minutes(12), ORDER)
    granted = GrantedCompensation(Measurement.minutes(12), first)
    extra = top_up(DISH, granted, Measurement.minutes(17), ORDER)
    assert extra == CompensationSet(2, frozenset(), 0, 24_00), (
        "a worse incident (17 min after 12) adds only the 20% refund, not a second fruit plate"
    )
    granted = GrantedCompensation(Measurement.minutes(17), first.plus(extra))
    final = top_up(DISH, granted, Measurement.minutes(22), ORDER)
    assert final.refund_minor == 2 * ORDER - 24_00, "tier 3 tops the refund up to double"
    assert not final.vouchers, "the fruit plate is never given twice"


@pytest.mark.parametrize("minutes", [5, 12, 17])
def test_same_or_better_measurement_adds_nothing(minutes: int) -> None:
    granted = GrantedCompensation(
        Measurement.minutes(17), evaluate(DISH, Measurement.minutes(17), ORDER)
    )
    assert top_up(DISH, granted, Measurement.minutes(minutes), ORDER).is_empty, (
        f"a {minutes}-minute report after a 17-minute one must pay nothing more"
    )


def test_repeated_report_pays_nothing_even_with_a_different_order_amount() -> None:
    granted = GrantedCompensation(
        Measurement.minutes(17), evaluate(DISH, Measurement.minutes(17), ORDER)
    )
    repeat = top_up(DISH, granted, Measurement.seconds(17 * 60), 2 * ORDER)
    assert repeat.is_empty, "the same 17-minute breach reported again must never pay twice"


def test_worse_measurement_within_the_same_tier_adds_nothing() -> None:
    granted = GrantedCompensation(
        Measurement.minutes(16), evaluate(DISH, Measurement.minutes(16), ORDER)
    )
    assert top_up(DISH, granted, Measurement.minutes(19), ORDER).is_empty, (
        "16 then 19 minutes are both tier 2: nothing more is owed"
    )


@given(st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=8))
def test_any_incident_sequence_pays_exactly_what_the_worst_one_earns(minutes: list[int]) -> None:
    granted = GrantedCompensation(Measurement.minutes(0), CompensationSet())
    for value in minutes:
        measured = Measurement.minutes(value)
        extra = top_up(DISH, granted, measured, ORDER)
        worst = max(measured, granted.measured, key=lambda m: m.value)
        granted = GrantedCompensation(worst, granted.compensation.plus(extra))
    expected = evaluate(DISH, Measurement.minutes(max(minutes)), ORDER)
    paid = granted.compensation
    assert (paid.vouchers, paid.points, paid.refund_minor) == (
        expected.vouchers,
        expected.points,
        expected.refund_minor,
    ), f"incidents {minutes} paid {paid}, but the worst only earns {expected}: paid twice"


def test_breach_keys_identify_one_order_and_promise() -> None:
    assert breach_key("o-1", PromiseKind.DISH_WAIT_TIME) == breach_key(
        "o-1", PromiseKind.DISH_WAIT_TIME
    ), "the same breach must always map to the same key"
    assert breach_key("o-1", PromiseKind.DISH_WAIT_TIME) != breach_key(
        "o-1", PromiseKind.CHECK_OUT_TIME
    ), "two promises on one order are two breaches"
    keys = {tier_payment_key("o-1", PromiseKind.DISH_WAIT_TIME, t) for t in (1, 2, 3)}
    assert len(keys) == 3, "each top-up tier needs its own payment key"
