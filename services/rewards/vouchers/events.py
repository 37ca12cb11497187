"""The events vouchers emit: issued, redeemed, expired (ids derived from the voucher).

`reward.issued` goes out with every compensation paid in vouchers, so it is assembled
without validation when every field is within the contract, as `compensation.granted`
is (services.rewards.compensation.events; the same unit test holds the two paths equal).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, get_args

from services.rewards.compensation.events import (
    assembled,
    aware,
    customer_id_rule,
    envelope,
    text_rule,
)
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

_IDENTIFIER = text_rule(RewardIssuedData, "reward_code")
_ORIGIN_REF = text_rule(RewardIssuedData, "origin_ref")
_ORIGINS = frozenset(get_args(RewardIssuedData.model_fields["origin"].annotation))
_ISSUED = "reward.issued"


def reward_issued(row: dict[str, Any]) -> RewardIssued:
    """`reward.issued` for a voucher row just inserted (at its issue time)."""
    voucher_id = str(row["voucher_id"])
    fields = {
        "voucher_id": voucher_id,
        "reward_code": row["reward_code"],
        "origin": row["origin"],
        "origin_ref": row["origin_ref"],
        "merchant_id": row["merchant_id"],
        "issued_at": row["issued_at"],
        "expires_at": row["expires_at"],
    }
    at = row["issued_at"]
    if _assemblable(row, voucher_id):
        issued = assembled(RewardIssuedData, fields)
        # The voucher id's text as the cause: the id derived from the UUID, without a str().
        return assembled(
            RewardIssued, envelope(_ISSUED, row["customer_id"], voucher_id, at, issued)
        )
    data = RewardIssuedData(**fields)
    return rewards_envelope(RewardIssued, row["customer_id"], row["voucher_id"], at, data)


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


def _assemblable(row: dict[str, Any], voucher_id: str) -> bool:
    """Every field of `reward.issued` within its contract."""
    merchant_id = row["merchant_id"]
    return (
        row["origin"] in _ORIGINS
        and customer_id_rule(row["customer_id"])
        and _IDENTIFIER(voucher_id)
        and _IDENTIFIER(row["reward_code"])
        and _ORIGIN_REF(row["origin_ref"])
        and (merchant_id is None or _IDENTIFIER(merchant_id))
        and aware(row["issued_at"])
        and aware(row["expires_at"])
    )
