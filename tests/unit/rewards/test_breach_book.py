"""A batch of breach reports judged in memory (`BreachBook.assess`): each report sees the
book as the earlier reports of the batch left it, so a batch decides exactly what the same
reports one by one would; plus the lock order and the top-tier ceiling the invariants use."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.rewards.compensation.repository import party_lock_keys
from services.rewards.domain.breach_book import (
    BreachBook,
    BreachReport,
    GrantTotals,
    _Granted,
    compensation_id_for,
)
from services.rewards.domain.guarantee import (
    Measurement,
    PromiseKind,
    breach_key,
    restaurant_dish_wait_policy,
)
from services.rewards.domain.guarantee_limits import CompensationLimits
from services.rewards.invariants import top_tier_refund

NOW = datetime(2026, 3, 31, 23, 0, tzinfo=UTC)
POLICY = restaurant_dish_wait_policy("m1")


def report(order: str, minutes: int, *, customer: str = "c1", at: datetime = NOW) -> BreachReport:
    return BreachReport(
        customer_id=customer,
        merchant_id="m1",
        order_id=order,
        promise=PromiseKind.DISH_WAIT_TIME,
        measured=Measurement.minutes(minutes),
        order_amount_minor=80_00,
        currency="EUR",
        trigger="incident",
        trigger_ref=f"incident:{order}:{minutes}",
        at=at,
    )


def book(limits: CompensationLimits | None = None) -> BreachBook:
    return BreachBook({"m1": limits or CompensationLimits()}, {})


def test_a_worse_report_later_in_the_batch_only_tops_up() -> None:
    batch = book()
    first = batch.assess(report("o1", 12), POLICY)
    worse = batch.assess(report("o1", 25), POLICY)
    same = batch.assess(report("o1", 25), POLICY)
    assert (first.status, worse.status, same.status) == ("granted", "granted", "nothing_owed")
    paid = [(row["tier"], row["refund_minor"], row["new_breach"]) for row in batch.assessed]
    assert paid == [(1, 0, True), (3, 160_00, False)], "the top-up pays the difference only"
    key = breach_key("o1", PromiseKind.DISH_WAIT_TIME)
    assert worse.compensation_id == compensation_id_for(key, 3)
    stored = batch.breaches[key].row
    assert (stored["tier"], stored["refund_minor"], stored["worst_value"]) == (3, 160_00, 25)


def test_caps_count_what_the_batch_already_granted() -> None:
    batch = book(CompensationLimits(customer_breach_cap=1, merchant_monthly_budget_minor=40_00))
    first = batch.assess(report("o1", 16), POLICY)  # a fruit plate and 16.00
    second = batch.assess(report("o2", 16), POLICY)  # a second breach in 30 days
    top_up = batch.assess(report("o1", 25), POLICY)  # 144.00 more: not a new breach
    assert [a.status for a in (first, second, top_up)] == ["granted", "in_review", "in_review"]
    reasons = [row["review_reasons"] for row in batch.assessed]
    assert reasons == [[], ["customer_breach_cap"], ["merchant_monthly_budget"]]
    assert batch.month_spend("m1", NOW) == (16_00, 0), "only what was granted counts"


def test_grants_outside_the_window_or_month_do_not_count() -> None:
    batch = book(
        CompensationLimits(customer_refund_cap_minor=20_00, merchant_monthly_budget_minor=20_00)
    )
    batch.customer_grants["c1"] = [_Granted(NOW - timedelta(days=30), 20_00, "old")]
    batch.merchant_months[("m1", datetime(2026, 2, 1, tzinfo=UTC))] = (20_00, 0)
    assert batch.assess(report("o1", 16), POLICY).status == "granted"
    next_month = NOW + timedelta(hours=2)
    assert batch.month_spend("m1", next_month) == (0, 0), "April starts a fresh budget"
    assert batch.usage("c1", next_month).refund_minor == 16_00


def test_a_held_compensation_is_not_counted_against_the_caps() -> None:
    batch = book(CompensationLimits(customer_refund_cap_minor=10_00))
    held = batch.assess(report("o1", 16), POLICY)
    assert held.status == "in_review"
    assert batch.usage("c1", NOW).refund_minor == 0
    forced = batch.assess(report("o2", 11), POLICY, force_review="order_unknown")
    assert forced.status == "in_review"
    assert batch.assessed[-1]["review_reasons"] == ["order_unknown"]


def test_locks_are_taken_merchants_first_each_set_sorted_once() -> None:
    keys = party_lock_keys(["m2", "m1", "m2"], ["c9", "c1"])
    assert keys == [
        "rewards:merchant:m1",
        "rewards:merchant:m2",
        "rewards:customer:c1",
        "rewards:customer:c9",
    ]


def test_the_top_tier_pays_double_the_order_at_most() -> None:
    assert top_tier_refund(POLICY, 80_00) == 160_00
    assert top_tier_refund(POLICY, 0) == 0


def test_summed_grants_and_single_grants_count_each_breach_once() -> None:
    """The caps read grants the whole batch's windows share as one sum with its breach
    keys, the rest one by one: a breach in both, or granted again by this batch, is one."""
    batch = book(CompensationLimits(customer_breach_cap=3))
    batch.customer_totals["c1"] = GrantTotals(
        NOW - timedelta(days=29), NOW + timedelta(days=29), 30_00, 5, frozenset({"b1", "b2"})
    )
    batch.customer_grants["c1"] = [
        _Granted(NOW - timedelta(days=29, hours=12), 10_00, "b1"),  # a tier of b1, earlier
        _Granted(NOW + timedelta(days=29, hours=12), 7_00, "b3"),  # a claim dated later
        _Granted(NOW - timedelta(days=31), 99_00, "b4"),  # outside every window of NOW
    ]
    usage = batch.usage("c1", NOW)
    assert (usage.refund_minor, usage.breaches, usage.points) == (47_00, 3, 5)
    assert batch.assess(report("o9", 16), POLICY).status == "in_review", "a 4th breach"
    assert batch.assessed[-1]["review_reasons"] == ["customer_breach_cap"]
