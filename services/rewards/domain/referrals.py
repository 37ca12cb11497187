"""Referrals ("old brings new", DOMAIN.md section 1).

Each customer has a referral code to share. A referral is refused when it is a
self-referral, when it would close a circle (B referred A, so A cannot refer B,
nor can anyone A brought in), when the new customer already has a referrer, or
when the "new" customer has already bought something. When the referred
customer's first purchase settles (its return window ended and it was not fully
returned), both receive their reward once: the two idempotency keys depend only on
the referred customer, who has one referrer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from services.rewards.domain.codes import Chooser, parse_code, random_code
from services.rewards.domain.grants import Grant
from services.rewards.domain.keys import idempotency_key, require_identifier

REFERRAL_PAYLOAD_LENGTH = 7


def new_referral_code(choose: Chooser | None = None) -> str:
    """A fresh referral code: 8 characters, short enough to say aloud, with a check character."""
    return random_code(REFERRAL_PAYLOAD_LENGTH, choose)


def parse_referral_code(text: str) -> str:
    """The canonical referral code typed as `text`; raises if mistyped."""
    return parse_code(text, REFERRAL_PAYLOAD_LENGTH, "referral code")


class ReferralRefusal(StrEnum):
    """Stable codes for why a referral is not recorded."""

    SELF_REFERRAL = "self_referral"
    ALREADY_REFERRED = "already_referred"
    NOT_A_NEW_CUSTOMER = "not_a_new_customer"
    CIRCULAR_REFERRAL = "circular_referral"


def _referral_chain_reaches(start: str, target: str, referred_by: Mapping[str, str]) -> bool:
    """True when following "who referred whom" upward from `start` meets `target`."""
    seen: set[str] = set()
    current: str | None = start
    while current is not None and current not in seen:
        if current == target:
            return True
        seen.add(current)
        current = referred_by.get(current)
    return False


def referral_refusal(
    referrer_id: str,
    referee_id: str,
    referred_by: Mapping[str, str],
    referee_has_purchased: bool,
) -> ReferralRefusal | None:
    """Why `referrer_id` cannot be recorded as referring `referee_id`, or None if allowed.

    `referred_by` maps a customer to the customer who referred them: the chain
    lookups the caller loaded (at least the referrer's upward chain).
    """
    require_identifier(referrer_id, "the referrer id")
    require_identifier(referee_id, "the referred customer id")
    if referrer_id == referee_id:
        return ReferralRefusal.SELF_REFERRAL
    if referee_id in referred_by:
        return ReferralRefusal.ALREADY_REFERRED
    if referee_has_purchased:
        return ReferralRefusal.NOT_A_NEW_CUSTOMER
    if _referral_chain_reaches(referrer_id, referee_id, referred_by):
        return ReferralRefusal.CIRCULAR_REFERRAL
    return None


@dataclass(frozen=True)
class Referral:
    referrer_id: str
    referee_id: str


@dataclass(frozen=True)
class ReferralProgramme:
    """What each side receives when the referred customer's first purchase settles."""

    referrer_grant: Grant
    referee_grant: Grant


class ReferralRole(StrEnum):
    REFERRER = "referrer"
    REFEREE = "referee"


@dataclass(frozen=True)
class ReferralReward:
    customer_id: str
    role: ReferralRole
    grant: Grant
    idempotency_key: str


def rewards_for_first_purchase(
    referral: Referral, programme: ReferralProgramme, buyer_id: str, is_first_purchase: bool
) -> tuple[ReferralReward, ...]:
    """Both rewards when the referred customer's first (settled) purchase is this one, else
    nothing.

    Replays return the same idempotency keys, so each side is paid once.
    """
    if buyer_id != referral.referee_id or not is_first_purchase:
        return ()
    return tuple(
        ReferralReward(
            customer, role, grant, idempotency_key("referral", referral.referee_id, role)
        )
        for customer, role, grant in (
            (referral.referrer_id, ReferralRole.REFERRER, programme.referrer_grant),
            (referral.referee_id, ReferralRole.REFEREE, programme.referee_grant),
        )
    )
