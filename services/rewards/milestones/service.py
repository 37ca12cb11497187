"""Milestones and referral rewards, fired as the projection moves, on settled purchases only.

A purchase counts once its return window has ended (`points.settled`), so buying and
returning within the window earns no milestone and no referral reward:
- "every N lifetime points" rules count `settled_lifetime_points` (what stayed of every
  settled order), never the points of `points.accrued`;
- "tier reached" rules fire on `tier.changed` (the points service moves tiers only on
  settled purchases), from its `previous_tier` to its `tier`;
- the referral reward is paid at the referred customer's first settled purchase
  (`first_settled_purchase` of a `points.settled` that is not fully returned), not at the
  first `points.accrued`.

Milestone rules are rows of `milestone_rules`. Each firing inserts its idempotency key into
`milestones_reached` first and pays only if that insert took, so a replayed or re-derived
event never pays twice. Referral rewards are paid as the `referral_programme` row says at
that moment (read once per batch); the `referrals` row is marked rewarded in the same
transaction, and each side's voucher or credit carries a key that depends only on the
referred customer.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from services.rewards.customers.service import CustomerView
from services.rewards.domain.errors import RewardsRuleError
from services.rewards.domain.grants import Grant, PointsGrant, VoucherGrant
from services.rewards.domain.milestones import (
    EveryLifetimePoints,
    LoyaltyProjection,
    MilestoneRule,
    MilestoneRulebook,
    TierLadder,
    TierReached,
)
from services.rewards.domain.milestones import (
    milestones_reached as reached_between,
)
from services.rewards.domain.referrals import Referral, rewards_for_first_purchase
from services.rewards.milestones.events import points_granted
from services.rewards.referrals.service import StoredProgramme, load_programme
from services.rewards.vouchers.service import VoucherRequest, issue_voucher
from shared.contracts.envelope import EventEnvelope
from shared.contracts.points import PointsSettled, TierChanged
from shared.errors import Unprocessable

if TYPE_CHECKING:
    from services.rewards.uow import RewardsUnitOfWork

log = logging.getLogger(__name__)
LADDER = TierLadder(("member", "silver", "gold", "platinum"))
_RULEBOOK = "rewards.milestone_rulebook"
_PROGRAMME = "rewards.referral_programme"


def rule_from_row(row: Any) -> MilestoneRule:
    grant: Grant = (
        VoucherGrant(row.grant_reward_code)
        if row.grant_reward_code is not None
        else PointsGrant(int(row.grant_points))
    )
    if row.kind == "every_lifetime_points":
        return EveryLifetimePoints(row.rule_key, int(row.every_points), grant)
    return TierReached(row.rule_key, row.tier, grant)


async def _rulebook(uow: RewardsUnitOfWork) -> MilestoneRulebook:
    book = uow.state.get(_RULEBOOK)
    if not isinstance(book, MilestoneRulebook):
        rows = await uow.milestones.active_rules()
        book = MilestoneRulebook(LADDER, tuple(rule_from_row(r) for r in rows))
        uow.state[_RULEBOOK] = book
    return book


async def _programme(uow: RewardsUnitOfWork) -> StoredProgramme | None:
    """The referral programme, read once per batch (None stored as "none configured")."""
    if _PROGRAMME not in uow.state:
        uow.state[_PROGRAMME] = await load_programme(uow)
    stored: StoredProgramme | None = uow.state[_PROGRAMME]
    return stored


async def grant(
    uow: RewardsUnitOfWork, customer_id: str, what: Grant, origin: str, key: str
) -> None:
    """Pay a voucher (issued here) or points (requested from the points service)."""
    if isinstance(what, VoucherGrant):
        request = VoucherRequest(customer_id, what.reward_code, origin, key)
        await issue_voucher(uow, request, uow.now)
        return
    uow.emit_rewards(points_granted(customer_id, what.points, origin, key, uow.now))


def _settled_move(
    before: CustomerView | None, after: CustomerView
) -> tuple[LoyaltyProjection, LoyaltyProjection]:
    """Settled points before and after, the tier held still (a settlement moves no tier)."""
    previous = 0 if before is None else before.settled_points
    return (
        LoyaltyProjection(previous, after.tier),
        LoyaltyProjection(after.settled_points, after.tier),
    )


def _tier_move(event: TierChanged, after: CustomerView) -> tuple[LoyaltyProjection, ...]:
    """The tier move `tier.changed` reports, the settled points held still."""
    return (
        LoyaltyProjection(after.settled_points, event.data.previous_tier.value),
        LoyaltyProjection(after.settled_points, event.data.tier.value),
    )


async def _milestones(
    uow: RewardsUnitOfWork,
    customer_id: str,
    move: tuple[LoyaltyProjection, ...],
) -> None:
    book = await _rulebook(uow)
    if not book.rules:
        return
    previous, current = move
    for firing in reached_between(customer_id, book, previous, current):
        took = await uow.milestones.reach(firing, uow.now)
        if took is not None:
            await grant(uow, firing.customer_id, firing.grant, "milestone", took)


async def _referral(uow: RewardsUnitOfWork, event: PointsSettled) -> None:
    referrer_id = await uow.referrals.mark_rewarded(event.customer_id, uow.now)
    if referrer_id is None:
        return
    stored = await _programme(uow)
    if stored is None or not stored.active:
        log.info("referral of %s: no active programme, nothing paid", event.customer_id)
        return
    referral = Referral(referrer_id, event.customer_id)
    for reward in rewards_for_first_purchase(referral, stored.programme, event.customer_id, True):
        await grant(uow, reward.customer_id, reward.grant, "referral", reward.idempotency_key)


async def on_projection_change(
    uow: RewardsUnitOfWork, event: EventEnvelope, before: CustomerView | None, after: CustomerView
) -> None:
    """What fires when one points event moves a customer's view: only a settlement (points
    milestones, the referral) and a tier change (tier milestones) can pay anything."""
    if isinstance(event, PointsSettled):
        await _milestones(uow, after.customer_id, _settled_move(before, after))
        if event.data.first_settled_purchase and not event.data.fully_returned:
            await _referral(uow, event)
    elif isinstance(event, TierChanged):
        await _milestones(uow, after.customer_id, _tier_move(event, after))


async def save_rule(uow: RewardsUnitOfWork, values: dict[str, Any]) -> None:
    """Create or change a milestone rule; refuses (422) a rule whose shape or grant is
    inconsistent: every_lifetime_points needs every_points, tier_reached a known tier, and
    exactly one of a voucher or points is granted."""
    kind = values["kind"]
    shape_ok = (kind == "every_lifetime_points") == (values["every_points"] is not None) and (
        kind == "tier_reached"
    ) == (values["tier"] is not None)
    one_grant = (values["grant_reward_code"] is None) != (values["grant_points"] is None)
    if not shape_ok or not one_grant:
        raise Unprocessable(
            "every_lifetime_points needs every_points, tier_reached needs tier; "
            "and exactly one of grant_reward_code, grant_points",
            code="milestone_rule_invalid",
        )
    try:
        rule_from_row(type("Row", (), values))
        if values["tier"]:
            LADDER.rank(values["tier"])
    except RewardsRuleError as error:
        raise Unprocessable(str(error), code="milestone_rule_invalid") from error
    await uow.milestones.save_rule(values)
