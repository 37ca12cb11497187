"""Referral codes, recorded referrals and the referral programme (the stored side of
`domain.referrals`).

- A customer's code is created on first request and never changes (`customers.referral_code`
  is unique; a customer the projection has not seen yet gets a row with the defaults).
- Recording "who referred whom" takes one advisory lock for every referral: two requests
  that would close a circle (A refers B while B refers A) cannot both pass the check. The
  referee is the primary key of `referrals`, so a customer has one referrer at most.
- What each side receives is the `referral_programme` row, read once per consumer batch;
  admins change it without a deploy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import IntegrityError

from services.rewards.domain.errors import InvalidCodeError
from services.rewards.domain.grants import Grant, PointsGrant, VoucherGrant
from services.rewards.domain.referrals import (
    ReferralProgramme,
    ReferralRefusal,
    new_referral_code,
    parse_referral_code,
    referral_refusal,
)
from shared.errors import Conflict, NotFound, Unprocessable

if TYPE_CHECKING:
    from services.rewards.uow import RewardsUnitOfWork

_CODE_ATTEMPTS = 5

_EXPLANATIONS = {
    ReferralRefusal.SELF_REFERRAL: "a customer cannot refer themselves",
    ReferralRefusal.ALREADY_REFERRED: "this customer already has a referrer",
    ReferralRefusal.NOT_A_NEW_CUSTOMER: "only a customer who has not bought yet can be referred",
    ReferralRefusal.CIRCULAR_REFERRAL: (
        "the referrer was brought in, directly or through others, by this customer"
    ),
}


class ReferralCodeUnknown(NotFound):
    code, title = "referral_code_unknown", "No customer has this referral code"


class ReferralRefused(Conflict):
    code, title = "referral_refused", "The referral cannot be recorded"


async def referral_code_of(uow: RewardsUnitOfWork, customer_id: str) -> str:
    """The customer's referral code, created on the first call and the same ever after."""
    for _ in range(_CODE_ATTEMPTS):
        try:
            return await uow.referrals.claim_code(customer_id, new_referral_code())
        except IntegrityError:
            continue  # another customer holds this code: draw again
    raise Conflict("could not draw a free referral code; try again", code="referral_code_busy")


def _canonical(code: str) -> str:
    try:
        return parse_referral_code(code)
    except InvalidCodeError as error:
        raise Unprocessable(str(error), code="referral_code_invalid", field="code") from error


async def record_referral(uow: RewardsUnitOfWork, referee_id: str, code: str) -> dict[str, Any]:
    """Record that the owner of `code` referred `referee_id`; refuses with the rule's reason.

    A customer who already bought (in either record: the order this service recorded from
    `pos.purchases`, or the points service's count, which can lag) cannot be referred."""
    canonical = _canonical(code)
    await uow.referrals.lock_all()
    referrer_id = await uow.referrals.owner_of(canonical)
    if referrer_id is None:
        raise ReferralCodeUnknown(f"no customer has the referral code {code}", field="code")
    links = await uow.referrals.referred_by(referrer_id, referee_id)
    purchased = await uow.referrals.has_purchased(referee_id)
    refusal = referral_refusal(referrer_id, referee_id, links, purchased)
    if refusal is not None:
        raise ReferralRefused(_EXPLANATIONS[refusal], code=refusal.value, field="code")
    await uow.referrals.add(referee_id, referrer_id, uow.now)
    return {"customer_id": referee_id, "referred_by": referrer_id, "recorded_at": uow.now}


@dataclass(frozen=True)
class StoredProgramme:
    """The programme row: what each side receives, and whether referrals pay at all."""

    programme: ReferralProgramme
    active: bool


def _grant(reward_code: str | None, points: int | None) -> Grant:
    return VoucherGrant(reward_code) if reward_code is not None else PointsGrant(int(points or 0))


def _columns(grant: Grant) -> tuple[str | None, int | None]:
    if isinstance(grant, VoucherGrant):
        return grant.reward_code, None
    return None, grant.points


async def load_programme(uow: RewardsUnitOfWork) -> StoredProgramme | None:
    """The referral programme, or None when none is configured (nothing is paid)."""
    row = await uow.referrals.programme_row()
    if row is None:
        return None
    programme = ReferralProgramme(
        _grant(row.referrer_reward_code, row.referrer_points),
        _grant(row.referee_reward_code, row.referee_points),
    )
    return StoredProgramme(programme, row.active)


def programme_view(stored: StoredProgramme | None) -> dict[str, Any]:
    """The programme as admins read and write it."""
    if stored is None:
        return {"active": False, "referrer": None, "referee": None}

    def side(grant: Grant) -> dict[str, Any]:
        if isinstance(grant, VoucherGrant):
            return {"reward_code": grant.reward_code, "points": None}
        return {"reward_code": None, "points": grant.points}

    return {
        "active": stored.active,
        "referrer": side(stored.programme.referrer_grant),
        "referee": side(stored.programme.referee_grant),
    }


async def save_programme(uow: RewardsUnitOfWork, stored: StoredProgramme) -> None:
    """Create or replace the one programme row."""
    values: dict[str, Any] = {"programme_id": 1, "active": stored.active}
    for prefix, grant in (
        ("referrer", stored.programme.referrer_grant),
        ("referee", stored.programme.referee_grant),
    ):
        code, points = _columns(grant)
        values[f"{prefix}_reward_code"], values[f"{prefix}_points"] = code, points
    await uow.referrals.save_programme(values)
