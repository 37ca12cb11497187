"""The reward catalogue: items bought with points, who may claim them, and the claim saga.

A claim spends points in the points service and issues a voucher here; either
both happen or neither. The saga's states, as pure transitions:

    requested --points debited--> points_debited --voucher issued--> issued
    requested --points rejected--> rejected
    points_debited --claim cancelled--> cancelled --points returned--> compensated

`cancelled` means the voucher will not be issued and the points return has been
requested; `compensated` means the points service confirmed the return. There
is no transition out of `points_debited` that leaves points spent without
either a voucher or a points return, and `pending_action` tells a recovery scan
what each unfinished state still needs after a crash.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from services.rewards.domain.errors import IllegalClaimTransitionError, InvalidRuleError
from services.rewards.domain.keys import require_identifier
from services.rewards.domain.timestamps import require_aware


@dataclass(frozen=True)
class CatalogueItem:
    """A reward a customer can buy with points.

    `total_stock` caps units; `budget_minor` with `unit_cost_minor` caps what the
    merchant spends in money; either may be None (no cap). `eligible_tiers` empty
    means every tier. `merchant_id` set means the voucher is redeemable only there.
    """

    item_id: str
    reward_code: str
    points_cost: int
    claimable_from: datetime
    claimable_until: datetime
    voucher_valid_for: timedelta
    total_stock: int | None = None
    budget_minor: int | None = None
    unit_cost_minor: int = 0
    per_customer_limit: int | None = None
    eligible_tiers: frozenset[str] = frozenset()
    merchant_id: str | None = None

    def __post_init__(self) -> None:
        require_identifier(self.item_id, "a catalogue item id")
        require_identifier(self.reward_code, "a catalogue item's reward code")
        require_aware(self.claimable_from, "the start of an item's claim period")
        require_aware(self.claimable_until, "the end of an item's claim period")
        self._check_amounts()

    def _check_amounts(self) -> None:
        if self.points_cost <= 0:
            raise InvalidRuleError(f"item {self.item_id} must cost at least 1 point")
        if self.claimable_until <= self.claimable_from:
            raise InvalidRuleError(f"item {self.item_id}: its claim period ends before it starts")
        if self.voucher_valid_for <= timedelta(0):
            raise InvalidRuleError(f"item {self.item_id}: vouchers must be valid for some time")
        limits = (self.total_stock, self.budget_minor, self.per_customer_limit)
        if any(limit is not None and limit < 0 for limit in limits) or self.unit_cost_minor < 0:
            raise InvalidRuleError(f"item {self.item_id}: stock, budget and limits must be >= 0")
        if self.budget_minor is not None and self.unit_cost_minor == 0:
            raise InvalidRuleError(f"item {self.item_id}: a budget needs a unit cost")


@dataclass(frozen=True)
class ItemUsage:
    """What is already committed on an item.

    Both counts include only claims that hold a unit (`holds_stock`): a rejected or
    cancelled claim gives its unit, and its per-customer slot, back.
    """

    units_claimed: int = 0
    claims_by_customer: int = 0


@dataclass(frozen=True)
class Claimant:
    """The customer claiming, as this service's projection sees them."""

    customer_id: str
    tier: str
    available_points: int


class IneligibleReason(StrEnum):
    """Stable codes for why an item cannot be claimed."""

    NOT_YET_CLAIMABLE = "not_yet_claimable"
    NO_LONGER_CLAIMABLE = "no_longer_claimable"
    OUT_OF_STOCK = "out_of_stock"
    BUDGET_EXHAUSTED = "budget_exhausted"
    CUSTOMER_LIMIT_REACHED = "customer_limit_reached"
    TIER_NOT_ELIGIBLE = "tier_not_eligible"
    INSUFFICIENT_POINTS = "insufficient_points"


@dataclass(frozen=True)
class Ineligible:
    """Why a claim is refused, in a stable code and in words for the customer."""

    reason: IneligibleReason
    explanation: str


def units_left(item: CatalogueItem, usage: ItemUsage) -> int | None:
    """Units that can still be claimed (None: unlimited); the tighter of stock and budget."""
    caps = []
    if item.total_stock is not None:
        caps.append(item.total_stock)
    if item.budget_minor is not None:
        caps.append(item.budget_minor // item.unit_cost_minor)
    return max(0, min(caps) - usage.units_claimed) if caps else None


def _period_problem(item: CatalogueItem, now: datetime) -> Ineligible | None:
    if now < item.claimable_from:
        return Ineligible(
            IneligibleReason.NOT_YET_CLAIMABLE,
            f"{item.item_id} can be claimed from {item.claimable_from.isoformat()}",
        )
    if now >= item.claimable_until:
        return Ineligible(
            IneligibleReason.NO_LONGER_CLAIMABLE,
            f"{item.item_id} could be claimed until {item.claimable_until.isoformat()}",
        )
    return None


def _supply_problem(item: CatalogueItem, usage: ItemUsage) -> Ineligible | None:
    left = units_left(item, usage)
    if left is None or left > 0:
        return None
    stock_left = None if item.total_stock is None else item.total_stock - usage.units_claimed
    if stock_left is not None and stock_left <= 0:
        return Ineligible(IneligibleReason.OUT_OF_STOCK, f"{item.item_id} is out of stock")
    return Ineligible(IneligibleReason.BUDGET_EXHAUSTED, f"the budget for {item.item_id} is spent")


def _customer_problem(
    item: CatalogueItem, claimant: Claimant, usage: ItemUsage
) -> Ineligible | None:
    limit = item.per_customer_limit
    if limit is not None and usage.claims_by_customer >= limit:
        return Ineligible(
            IneligibleReason.CUSTOMER_LIMIT_REACHED,
            f"{item.item_id} can be claimed {limit} time(s) per customer",
        )
    if item.eligible_tiers and claimant.tier not in item.eligible_tiers:
        tiers = ", ".join(sorted(item.eligible_tiers))
        return Ineligible(
            IneligibleReason.TIER_NOT_ELIGIBLE,
            f"{item.item_id} is for {tiers} members; customer is {claimant.tier}",
        )
    if claimant.available_points < item.points_cost:
        return Ineligible(
            IneligibleReason.INSUFFICIENT_POINTS,
            f"{item.item_id} costs {item.points_cost} points; "
            f"{claimant.available_points} are available",
        )
    return None


def claim_ineligibility(
    item: CatalogueItem, claimant: Claimant, usage: ItemUsage, now: datetime
) -> Ineligible | None:
    """Why `claimant` cannot claim `item` now, or None when the claim may go ahead.

    The points check uses this service's projection as a fast first answer; the
    points service stays the authority and may still reject the debit.
    """
    require_aware(now, "now")
    return (
        _period_problem(item, now)
        or _supply_problem(item, usage)
        or _customer_problem(item, claimant, usage)
    )


def may_claim_for(key_merchant: str | None, item_merchant: str | None) -> bool:
    """Whether an API key bound to `key_merchant` (None: unbound) may claim an item of
    `item_merchant` (None: the programme's own item). A bound key never spends a
    customer's points at another merchant."""
    return key_merchant is None or item_merchant is None or item_merchant == key_merchant


def supply_below_claimed(
    units_claimed: int, total_stock: int | None, budget_minor: int | None, unit_cost_minor: int
) -> tuple[str, str] | None:
    """(field, explanation) when the new stock or budget is below the units already claimed."""
    if total_stock is not None and total_stock < units_claimed:
        return "total_stock", (
            f"total_stock {total_stock} is below the {units_claimed} unit(s) already claimed"
        )
    if budget_minor is not None and units_claimed * unit_cost_minor > budget_minor:
        return "budget_minor", (
            f"budget_minor {budget_minor} is below the {units_claimed} unit(s) already claimed "
            f"at {unit_cost_minor} each"
        )
    return None


def voucher_expiry(item: CatalogueItem, issued_at: datetime) -> datetime:
    """When a voucher for `item` issued at `issued_at` stops being redeemable."""
    return require_aware(issued_at, "the voucher issue time") + item.voucher_valid_for


class ClaimState(StrEnum):
    REQUESTED = "requested"
    POINTS_DEBITED = "points_debited"
    ISSUED = "issued"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    COMPENSATED = "compensated"


class ClaimStep(StrEnum):
    """What happened to a claim (the facts the saga reacts to)."""

    POINTS_DEBITED = "points_debited"
    POINTS_REJECTED = "points_rejected"
    VOUCHER_ISSUED = "voucher_issued"
    CLAIM_CANCELLED = "claim_cancelled"
    POINTS_RETURNED = "points_returned"


_TRANSITIONS: dict[tuple[ClaimState, ClaimStep], ClaimState] = {
    (ClaimState.REQUESTED, ClaimStep.POINTS_DEBITED): ClaimState.POINTS_DEBITED,
    (ClaimState.REQUESTED, ClaimStep.POINTS_REJECTED): ClaimState.REJECTED,
    (ClaimState.POINTS_DEBITED, ClaimStep.VOUCHER_ISSUED): ClaimState.ISSUED,
    (ClaimState.POINTS_DEBITED, ClaimStep.CLAIM_CANCELLED): ClaimState.CANCELLED,
    (ClaimState.CANCELLED, ClaimStep.POINTS_RETURNED): ClaimState.COMPENSATED,
}


def advance_claim(state: ClaimState, step: ClaimStep) -> ClaimState:
    """The claim's next state after `step`; raises when the saga does not allow it."""
    try:
        return _TRANSITIONS[(state, step)]
    except KeyError:
        raise IllegalClaimTransitionError(
            f"a claim that is {state} cannot take the step {step}"
        ) from None


class SagaAction(StrEnum):
    """What rewards still has to do for a claim in a given state."""

    AWAIT_POINTS_DECISION = "await_points_decision"
    ISSUE_VOUCHER_OR_CANCEL = "issue_voucher_or_cancel"
    AWAIT_POINTS_RETURN = "await_points_return"
    NOTHING = "nothing"


_PENDING: dict[ClaimState, SagaAction] = {
    ClaimState.REQUESTED: SagaAction.AWAIT_POINTS_DECISION,
    ClaimState.POINTS_DEBITED: SagaAction.ISSUE_VOUCHER_OR_CANCEL,
    ClaimState.CANCELLED: SagaAction.AWAIT_POINTS_RETURN,
}


def pending_action(state: ClaimState) -> SagaAction:
    """The work left for a claim in `state`; NOTHING once the saga has settled."""
    return _PENDING.get(state, SagaAction.NOTHING)


def is_settled(state: ClaimState) -> bool:
    """True when the claim has reached an end state (issued, rejected or compensated)."""
    return pending_action(state) is SagaAction.NOTHING


def holds_stock(state: ClaimState) -> bool:
    """True while a claim holds one unit of stock: from request until rejection or cancel."""
    return state in (ClaimState.REQUESTED, ClaimState.POINTS_DEBITED, ClaimState.ISSUED)
