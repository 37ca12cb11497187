"""A customer's own report (a claim) is paid up to the policy's self-reported maximum tier;
each higher tier is held until an incident's measurement reaches it (or a person decides)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from services.rewards.domain.breach_book import SELF_REPORTED, BreachBook, BreachReport
from services.rewards.domain.guarantee import (
    Measurement,
    PromiseKind,
    restaurant_dish_wait_policy,
    trusted_measurement,
)
from services.rewards.domain.guarantee_limits import CompensationLimits

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
POLICY = restaurant_dish_wait_policy("m1")  # over 10: fruit plate; 15: 20%; 20: double


def report(minutes: int, trigger: str) -> BreachReport:
    return BreachReport(
        "c1", "m1", "o1", PromiseKind.DISH_WAIT_TIME, Measurement.minutes(minutes), 20_00,
        "EUR", trigger, f"{trigger}:{minutes}", NOW,
    )  # fmt: skip


def rows(book: BreachBook) -> list[tuple[int, str, int, list[str]]]:
    return [(r["tier"], r["status"], r["refund_minor"], r["review_reasons"]) for r in book.assessed]


def test_a_claim_is_judged_at_most_at_the_self_reported_maximum() -> None:
    assert POLICY.tiers_reached(trusted_measurement(POLICY, Measurement.minutes(25))) == 1
    strict = replace(POLICY, self_reported_max_tier=0)
    assert strict.tiers_reached(trusted_measurement(strict, Measurement.minutes(25))) == 0
    assert trusted_measurement(POLICY, Measurement.minutes(12)) == Measurement.minutes(12)


def test_held_tiers_are_confirmed_by_an_incident_in_the_same_batch_and_paid_once() -> None:
    book = BreachBook({"m1": CompensationLimits()}, {})
    claimed = book.assess(report(25, "claim"), POLICY)
    assert claimed.status == "in_review" and claimed.granted_id is not None
    assert rows(book) == [
        (1, "granted", 0, []),
        (2, "in_review", 400, [SELF_REPORTED]),
        (3, "in_review", 3600, [SELF_REPORTED]),
    ]
    book.assess(report(17, "incident"), POLICY)  # reaches tier 2 only
    assert rows(book)[1:] == [(2, "granted", 400, []), (3, "in_review", 3600, [SELF_REPORTED])]
    book.assess(report(30, "incident"), POLICY)
    assert [r[1] for r in rows(book)] == ["granted"] * 3
    assert len(book.assessed) == 3 and book.confirmed == [], "each row is written (paid) once"


def test_a_confirmed_tier_still_respects_the_caps() -> None:
    book = BreachBook({"m1": CompensationLimits(customer_refund_cap_minor=1_000)}, {})
    book.assess(report(25, "claim"), POLICY)
    book.assess(report(25, "incident"), POLICY)
    assert rows(book)[1:] == [
        (2, "granted", 400, []),
        (3, "in_review", 3600, ["customer_refund_cap"]),
    ], "confirmed, but over the 10.00 cap: a person decides"
