"""Catalogue-claim bodies: the claim a partner app makes, and the claim as it stands."""

from __future__ import annotations

from pydantic import Field

from services.rewards.vouchers.schemas import Body, Timestamp, View, VoucherView
from shared.contracts.fields import Identifier


class ClaimRequest(Body):
    item_id: Identifier
    idempotency_key: str | None = Field(
        default=None, min_length=1, max_length=100, pattern=r"^[\x21-\x7e]+$"
    )


class ClaimView(View):
    """A claim as partner apps see it, with its voucher once issued."""

    claim_id: str
    item_id: str
    customer_id: str
    points: int
    state: str
    reason: str | None
    settled: bool = Field(description="issued, rejected or compensated: no further change")
    created_at: Timestamp
    updated_at: Timestamp
    voucher: VoucherView | None
