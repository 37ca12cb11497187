"""Vouchers: unguessable codes, status over time, and the redeem check.

A voucher code is the only thing a point of sale sees, so it must not be
guessable: 17 random characters from a 31-letter alphabet carry about 84 bits
(drawn with `secrets`), plus one check character that catches typos before a
lookup. A voucher is redeemed once, only before it expires, and only at its
merchant when the reward is bound to one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from services.rewards.domain.codes import Chooser, parse_code, random_code
from services.rewards.domain.errors import InvalidRuleError, VoucherNotRedeemableError
from services.rewards.domain.timestamps import require_aware

VOUCHER_PAYLOAD_LENGTH = 17


def new_voucher_code(choose: Chooser | None = None) -> str:
    """A fresh, unguessable voucher code (18 characters, the last a check character)."""
    return random_code(VOUCHER_PAYLOAD_LENGTH, choose)


def parse_voucher_code(text: str) -> str:
    """The canonical voucher code typed or scanned as `text`; raises if mistyped."""
    return parse_code(text, VOUCHER_PAYLOAD_LENGTH, "voucher code")


class VoucherStatus(StrEnum):
    ACTIVE = "active"
    REDEEMED = "redeemed"
    EXPIRED = "expired"


@dataclass(frozen=True)
class Voucher:
    """An issued voucher; `merchant_id` None means any merchant may redeem it."""

    code: str
    reward_code: str
    customer_id: str
    issued_at: datetime
    expires_at: datetime
    merchant_id: str | None = None
    redeemed_at: datetime | None = None
    redeemed_by: str | None = None

    def __post_init__(self) -> None:
        require_aware(self.issued_at, "the voucher issue time")
        require_aware(self.expires_at, "the voucher expiry time")
        if self.redeemed_at is not None:
            require_aware(self.redeemed_at, "the voucher redemption time")
        if self.expires_at <= self.issued_at:
            raise InvalidRuleError(f"voucher {self.code} would expire before it is issued")


def voucher_status(voucher: Voucher, now: datetime) -> VoucherStatus:
    """Status at `now`: redeemed wins over expired; expiry is at `expires_at` exactly."""
    if voucher.redeemed_at is not None and voucher.redeemed_at <= now:
        return VoucherStatus.REDEEMED
    if now >= voucher.expires_at:
        return VoucherStatus.EXPIRED
    return VoucherStatus.ACTIVE


class RedemptionRefusal(StrEnum):
    """Stable codes for why a voucher cannot be redeemed."""

    ALREADY_REDEEMED = "already_redeemed"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    WRONG_MERCHANT = "wrong_merchant"


def redemption_refusal(
    voucher: Voucher, merchant_id: str, now: datetime
) -> RedemptionRefusal | None:
    """Why `merchant_id` cannot redeem `voucher` at `now`, or None when it can."""
    require_aware(now, "now")
    status = voucher_status(voucher, now)
    if status is VoucherStatus.REDEEMED:
        return RedemptionRefusal.ALREADY_REDEEMED
    if status is VoucherStatus.EXPIRED:
        return RedemptionRefusal.EXPIRED
    if now < voucher.issued_at:
        return RedemptionRefusal.NOT_YET_VALID
    if voucher.merchant_id is not None and voucher.merchant_id != merchant_id:
        return RedemptionRefusal.WRONG_MERCHANT
    return None


_REFUSAL_WORDS = {
    RedemptionRefusal.ALREADY_REDEEMED: "has already been redeemed",
    RedemptionRefusal.EXPIRED: "has expired",
    RedemptionRefusal.NOT_YET_VALID: "is not valid yet",
    RedemptionRefusal.WRONG_MERCHANT: "can only be redeemed at the merchant that issued it",
}


def redeem(voucher: Voucher, merchant_id: str, now: datetime) -> Voucher:
    """The voucher as redeemed by `merchant_id` at `now`; raises with the reason otherwise."""
    refusal = redemption_refusal(voucher, merchant_id, now)
    if refusal is not None:
        raise VoucherNotRedeemableError(
            refusal.value, f"voucher {voucher.code} {_REFUSAL_WORDS[refusal]}"
        )
    return replace(voucher, redeemed_at=now, redeemed_by=merchant_id)


def is_due_for_expiry(voucher: Voucher, now: datetime) -> bool:
    """True when an unredeemed voucher has passed its expiry (time to emit voucher.expired)."""
    return voucher_status(voucher, require_aware(now, "now")) is VoucherStatus.EXPIRED
