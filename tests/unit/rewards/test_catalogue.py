"""Catalogue items: claim eligibility with a specific reason, and the claim saga's states."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from services.rewards.domain.catalogue import (
    CatalogueItem,
    Claimant,
    ClaimState,
    ClaimStep,
    IneligibleReason,
    ItemUsage,
    SagaAction,
    advance_claim,
    claim_ineligibility,
    holds_stock,
    is_settled,
    may_claim_for,
    pending_action,
    supply_below_claimed,
    units_left,
    voucher_expiry,
)
from services.rewards.domain.errors import (
    IllegalClaimTransitionError,
    InvalidRuleError,
    NaiveDatetimeError,
)

START = datetime(2025, 1, 1, tzinfo=UTC)
NOW = datetime(2025, 6, 1, tzinfo=UTC)
ITEM = CatalogueItem(
    item_id="spa-day",
    reward_code="spa-day",
    points_cost=5_000,
    claimable_from=START,
    claimable_until=datetime(2026, 1, 1, tzinfo=UTC),
    voucher_valid_for=timedelta(days=90),
    total_stock=5,
    per_customer_limit=1,
    eligible_tiers=frozenset({"gold", "platinum"}),
    merchant_id="hotel-spa",
)
GOLD_RICH = Claimant("c1", "gold", 8_000)


def test_eligible_claim_has_no_objection() -> None:
    assert claim_ineligibility(ITEM, GOLD_RICH, ItemUsage(2, 0), NOW) is None, (
        "a gold customer with enough points, stock left and no earlier claim may claim"
    )


@pytest.mark.parametrize(
    ("item", "claimant", "usage", "now", "reason"),
    [
        (ITEM, GOLD_RICH, ItemUsage(), START - timedelta(seconds=1),
         IneligibleReason.NOT_YET_CLAIMABLE),
        (ITEM, GOLD_RICH, ItemUsage(), ITEM.claimable_until, IneligibleReason.NO_LONGER_CLAIMABLE),
        (ITEM, GOLD_RICH, ItemUsage(5, 0), NOW, IneligibleReason.OUT_OF_STOCK),
        (replace(ITEM, total_stock=None, budget_minor=100_00, unit_cost_minor=30_00), GOLD_RICH,
         ItemUsage(3, 0), NOW, IneligibleReason.BUDGET_EXHAUSTED),
        (ITEM, GOLD_RICH, ItemUsage(1, 1), NOW, IneligibleReason.CUSTOMER_LIMIT_REACHED),
        (ITEM, Claimant("c1", "silver", 8_000), ItemUsage(), NOW,
         IneligibleReason.TIER_NOT_ELIGIBLE),
        (ITEM, Claimant("c1", "gold", 4_999), ItemUsage(), NOW,
         IneligibleReason.INSUFFICIENT_POINTS),
    ],
)  # fmt: skip
def test_each_ineligibility_has_its_specific_reason(
    item: CatalogueItem,
    claimant: Claimant,
    usage: ItemUsage,
    now: datetime,
    reason: IneligibleReason,
) -> None:
    refusal = claim_ineligibility(item, claimant, usage, now)
    assert refusal is not None, f"the claim should be refused for {reason}"
    assert refusal.reason is reason, f"expected {reason}, got {refusal.reason}"
    assert item.item_id in refusal.explanation, "the explanation must name the item"


def test_item_open_to_every_tier_and_unlimited() -> None:
    open_item = replace(ITEM, eligible_tiers=frozenset(), total_stock=None, per_customer_limit=None)
    anyone = Claimant("c9", "member", 5_000)
    refusal = claim_ineligibility(open_item, anyone, ItemUsage(999, 9), NOW)
    assert refusal is None, "an item without tier, stock or per-customer limits is open to all"
    assert units_left(open_item, ItemUsage(999, 0)) is None, "unlimited items have no stock count"


def test_units_left_takes_the_tighter_of_stock_and_budget() -> None:
    both = replace(ITEM, total_stock=10, budget_minor=100_00, unit_cost_minor=30_00)
    assert units_left(both, ItemUsage(1, 0)) == 2, "a 100.00 budget at 30.00 each allows 3 units"
    assert units_left(both, ItemUsage(7, 0)) == 0, "never negative"
    assert units_left(ITEM, ItemUsage(2, 0)) == 3, "5 in stock, 2 claimed: 3 left"


def test_voucher_expiry_follows_the_item_validity() -> None:
    assert voucher_expiry(ITEM, NOW) == NOW + timedelta(days=90), "a spa voucher lasts 90 days"


@pytest.mark.parametrize(
    "bad",
    [
        lambda: replace(ITEM, points_cost=0),
        lambda: replace(ITEM, claimable_until=START),
        lambda: replace(ITEM, voucher_valid_for=timedelta(0)),
        lambda: replace(ITEM, total_stock=-1),
        lambda: replace(ITEM, budget_minor=100, unit_cost_minor=0),
    ],
)
def test_inconsistent_items_are_refused(bad: Callable[[], object]) -> None:
    with pytest.raises(InvalidRuleError):
        bad()


def test_naive_times_are_refused() -> None:
    with pytest.raises(NaiveDatetimeError):
        replace(ITEM, claimable_from=datetime(2025, 1, 1))
    with pytest.raises(NaiveDatetimeError):
        claim_ineligibility(ITEM, GOLD_RICH, ItemUsage(), datetime(2025, 6, 1))


@pytest.mark.parametrize(
    ("steps", "end"),
    [
        ((ClaimStep.POINTS_DEBITED, ClaimStep.VOUCHER_ISSUED), ClaimState.ISSUED),
        ((ClaimStep.POINTS_REJECTED,), ClaimState.REJECTED),
        ((ClaimStep.POINTS_DEBITED, ClaimStep.CLAIM_CANCELLED), ClaimState.CANCELLED),
        (
            (ClaimStep.POINTS_DEBITED, ClaimStep.CLAIM_CANCELLED, ClaimStep.POINTS_RETURNED),
            ClaimState.COMPENSATED,
        ),
    ],
)
def test_saga_paths(steps: tuple[ClaimStep, ...], end: ClaimState) -> None:
    state = ClaimState.REQUESTED
    for step in steps:
        state = advance_claim(state, step)
    assert state is end, f"after {[s.value for s in steps]} the claim should be {end}"


LEGAL = {
    (ClaimState.REQUESTED, ClaimStep.POINTS_DEBITED),
    (ClaimState.REQUESTED, ClaimStep.POINTS_REJECTED),
    (ClaimState.POINTS_DEBITED, ClaimStep.VOUCHER_ISSUED),
    (ClaimState.POINTS_DEBITED, ClaimStep.CLAIM_CANCELLED),
    (ClaimState.CANCELLED, ClaimStep.POINTS_RETURNED),
}


@pytest.mark.parametrize(
    ("state", "step"),
    [(state, step) for state in ClaimState for step in ClaimStep if (state, step) not in LEGAL],
)
def test_every_other_transition_is_illegal(state: ClaimState, step: ClaimStep) -> None:
    with pytest.raises(IllegalClaimTransitionError):
        advance_claim(state, step)


def test_no_settled_state_leaves_points_spent_without_a_voucher() -> None:
    settled = {state for state in ClaimState if is_settled(state)}
    assert settled == {ClaimState.ISSUED, ClaimState.REJECTED, ClaimState.COMPENSATED}, (
        "only issued (voucher exists), rejected (nothing debited) and compensated "
        "(points returned) may end the saga"
    )
    assert pending_action(ClaimState.POINTS_DEBITED) is SagaAction.ISSUE_VOUCHER_OR_CANCEL, (
        "after a crash with points debited, recovery must issue the voucher or cancel"
    )
    assert pending_action(ClaimState.CANCELLED) is SagaAction.AWAIT_POINTS_RETURN
    assert pending_action(ClaimState.REQUESTED) is SagaAction.AWAIT_POINTS_DECISION


def test_stock_is_held_from_request_until_rejection_or_cancel() -> None:
    holding = {state for state in ClaimState if holds_stock(state)}
    assert holding == {ClaimState.REQUESTED, ClaimState.POINTS_DEBITED, ClaimState.ISSUED}, (
        "a rejected or cancelled claim must give its unit back to the stock"
    )


@pytest.mark.parametrize(
    ("key_merchant", "item_merchant", "allowed"),
    [
        (None, "cafe", True),
        (None, None, True),
        ("bistro", "bistro", True),
        ("bistro", None, True),
        ("bistro", "cafe", False),
    ],
)
def test_a_bound_key_claims_only_its_merchants_items_and_the_programmes(
    key_merchant: str | None, item_merchant: str | None, allowed: bool
) -> None:
    assert may_claim_for(key_merchant, item_merchant) is allowed


def test_stock_or_budget_below_the_units_claimed_names_the_field() -> None:
    assert supply_below_claimed(3, 3, 300, 100) is None, "exactly what is claimed is fine"
    assert supply_below_claimed(3, None, None, 100) is None
    below_stock = supply_below_claimed(3, 2, None, 0)
    assert below_stock is not None and below_stock[0] == "total_stock"
    below_budget = supply_below_claimed(3, 10, 299, 100)
    assert below_budget is not None and below_budget[0] == "budget_minor"
