"""Manual-review bodies: a compensation as held or decided, and the review queue."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from services.rewards.vouchers.schemas import NEXT_CURSOR, Timestamp, View


class CompensationView(View):
    """A stored compensation (one tier of one breach)."""

    compensation_id: str
    breach_key: str
    tier: int
    customer_id: str
    merchant_id: str
    order_id: str
    promise_kind: str
    vouchers: list[str]
    points: int
    refund_minor: int
    currency: str
    new_breach: bool
    status: str
    trigger: str
    trigger_ref: str
    review_reasons: list[str]
    created_at: Timestamp
    decided_at: Timestamp | None
    decided_by: str | None
    voucher_value_minor: int
    escalated_at: Timestamp | None
    overdue_at: Timestamp | None
    decision_note: str | None

    @classmethod
    def of(cls, values: Any) -> CompensationView:
        view = dict(values)
        view["compensation_id"] = str(view["compensation_id"])
        view["vouchers"] = list(view["vouchers"])
        view["review_reasons"] = list(view["review_reasons"])
        return cls.model_validate(view)


class ReviewQueue(View):
    """Compensations waiting for a person, oldest first."""

    reviews: list[CompensationView]
    next_cursor: str | None = Field(description=NEXT_CURSOR)
