"""Milestone rules: every N lifetime points, tier reached; once per customer, even on replay."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.rewards.domain.errors import BlankIdentifierError, InvalidRuleError
from services.rewards.domain.grants import PointsGrant, VoucherGrant
from services.rewards.domain.milestones import (
    EveryLifetimePoints,
    LoyaltyProjection,
    MilestoneRulebook,
    TierLadder,
    TierReached,
    milestones_reached,
)

LADDER = TierLadder(("member", "silver", "gold", "platinum"))
FREE_NIGHT = EveryLifetimePoints("free-night", 10_000, VoucherGrant("free-night"))
GOLD_WELCOME = TierReached("gold-welcome", "gold", VoucherGrant("gold-welcome-perk"))
BOOK = MilestoneRulebook(LADDER, (FREE_NIGHT, GOLD_WELCOME))


def fired(previous: LoyaltyProjection | None, current: LoyaltyProjection) -> list[tuple[str, int]]:
    return [(m.rule_key, m.occurrence) for m in milestones_reached("c1", BOOK, previous, current)]


def test_crossing_10000_lifetime_points_earns_a_free_night() -> None:
    got = fired(LoyaltyProjection(9_500, "member"), LoyaltyProjection(10_200, "member"))
    assert got == [("free-night", 1)], f"crossing 10,000 points must fire the free night: {got}"


def test_staying_below_the_next_threshold_fires_nothing() -> None:
    got = fired(LoyaltyProjection(10_200, "member"), LoyaltyProjection(19_999, "member"))
    assert got == [], f"no new multiple of 10,000 was reached: {got}"


def test_landing_exactly_on_a_threshold_fires_it() -> None:
    got = fired(LoyaltyProjection(19_999, "member"), LoyaltyProjection(20_000, "member"))
    assert got == [("free-night", 2)], "20,000 exactly is the second free night"


def test_a_jump_over_several_thresholds_fires_each_one() -> None:
    got = fired(LoyaltyProjection(5_000, "silver"), LoyaltyProjection(41_000, "platinum"))
    assert got == [("free-night", 1), ("free-night", 2), ("free-night", 3), ("free-night", 4),
                   ("gold-welcome", 1)], (
        f"a jump from 5,000 to 41,000 and silver to platinum passes 4 thresholds and Gold: {got}"
    )  # fmt: skip


def test_reaching_gold_fires_the_welcome_perk_once() -> None:
    assert fired(LoyaltyProjection(0, "silver"), LoyaltyProjection(0, "gold")) == [
        ("gold-welcome", 1)
    ], "reaching Gold must fire the welcome perk"
    assert fired(LoyaltyProjection(0, "gold"), LoyaltyProjection(0, "platinum")) == [], (
        "moving above Gold is not reaching Gold again"
    )


def test_requalifying_for_gold_reuses_the_same_key_so_it_pays_once() -> None:
    first = milestones_reached(
        "c1", BOOK, LoyaltyProjection(0, "silver"), LoyaltyProjection(0, "gold")
    )
    again = milestones_reached(
        "c1", BOOK, LoyaltyProjection(0, "silver"), LoyaltyProjection(0, "gold")
    )
    assert [m.idempotency_key for m in first] == [m.idempotency_key for m in again], (
        "dropping to silver and reaching Gold again must produce the key already stored"
    )


def test_points_going_down_fire_nothing() -> None:
    got = fired(LoyaltyProjection(12_000, "gold"), LoyaltyProjection(9_000, "silver"))
    assert got == [], "a points reversal must never fire a milestone"


def test_first_projection_of_a_new_customer_starts_from_zero() -> None:
    got = fired(None, LoyaltyProjection(10_000, "gold"))
    assert got == [("free-night", 1), ("gold-welcome", 1)], f"got {got}"


@given(
    st.lists(st.integers(min_value=0, max_value=60_000), min_size=1, max_size=12),
)
def test_replaying_any_history_fires_each_milestone_key_once(lifetime: list[int]) -> None:
    history = [LoyaltyProjection(points, "member") for points in lifetime]
    keys: list[str] = []
    previous: LoyaltyProjection | None = None
    for current in history + history:  # the whole topic replayed
        keys += [m.idempotency_key for m in milestones_reached("c1", BOOK, previous, current)]
        previous = current
    expected = {f"milestone:c1:free-night:{n}" for n in range(1, max(lifetime) // 10_000 + 1)}
    assert set(keys) == expected, (
        f"lifetime points {lifetime} must pay one free night per 10,000, no more, no less"
    )


def test_keys_differ_per_customer_rule_and_occurrence() -> None:
    one = milestones_reached("c1", BOOK, None, LoyaltyProjection(20_000, "member"))
    other = milestones_reached("c2", BOOK, None, LoyaltyProjection(20_000, "member"))
    keys = {m.idempotency_key for m in one + other}
    assert len(keys) == 4, "two customers x two free nights must give four distinct keys"


def test_points_grant_is_carried_on_the_firing() -> None:
    book = MilestoneRulebook(LADDER, (EveryLifetimePoints("bonus", 1_000, PointsGrant(50)),))
    (firing,) = milestones_reached("c1", book, None, LoyaltyProjection(1_000, "member"))
    assert firing.grant == PointsGrant(50), "the milestone must hand out its configured grant"


@pytest.mark.parametrize(
    "bad",
    [
        lambda: TierLadder(()),
        lambda: TierLadder(("gold", "gold")),
        lambda: EveryLifetimePoints("x", 0, VoucherGrant("v")),
        lambda: MilestoneRulebook(LADDER, (FREE_NIGHT, FREE_NIGHT)),
        lambda: MilestoneRulebook(LADDER, (TierReached("t", "diamond", VoucherGrant("v")),)),
        lambda: VoucherGrant(" "),
        lambda: PointsGrant(0),
    ],
)
def test_inconsistent_rules_are_refused(bad: Callable[[], object]) -> None:
    with pytest.raises(InvalidRuleError):
        bad()


def test_blank_customer_id_is_refused() -> None:
    with pytest.raises(BlankIdentifierError):
        milestones_reached("", BOOK, None, LoyaltyProjection(10_000, "member"))
