"""The events vouchers emit: issued, redeemed, expired (ids derived from the voucher)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from shared.contracts.envelope import derived_event_id
from shared.contracts.rewards import (
    RewardIssued,
    RewardIssuedData,
    VoucherExpired,
    VoucherExpiredData,
    VoucherRedeemed,
    VoucherRedeemedData,
    rewards_envelope,
)


def reward_issued(row: dict[str, Any]) -> RewardIssued:
    """`reward.issued` for a voucher row just inserted (at its issue time)."""
    data = RewardIssuedData(
        voucher_id=str(row["voucher_id"]),
        reward_code=row["reward_code"],
        origin=row["origin"],
        origin_ref=row["origin_ref"],
        merchant_id=row["merchant_id"],
        issued_at=row["issued_at"],
        expires_at=row["expires_at"],
    )
    return rewards_envelope(
        RewardIssued, row["customer_id"], row["voucher_id"], row["issued_at"], data
    )


def voucher_redeemed(
    row: Any, merchant_id: str, store_id: str | None, at: datetime
) -> VoucherRedeemed:
    data = VoucherRedeemedData(
        voucher_id=str(row.voucher_id),
        reward_code=row.reward_code,
        merchant_id=merchant_id,
        store_id=store_id,
        redeemed_at=at,
    )
    return rewards_envelope(VoucherRedeemed, row.customer_id, row.voucher_id, at, data)


def voucher_expired(row: Any, at: datetime) -> VoucherExpired:
    """`voucher.expired`, its id derived from the voucher's expiry (the same on every retry)."""
    data = VoucherExpiredData(
        voucher_id=str(row.voucher_id), reward_code=row.reward_code, expired_at=row.expires_at
    )
    cause: uuid.UUID = derived_event_id(row.voucher_id, "expiry")
    return rewards_envelope(VoucherExpired, row.customer_id, cause, at, data)
