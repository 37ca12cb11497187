"""The events a compensation emits: held for review, or paid (points, refund, the grant).

Every id is derived from the compensation, so a replayed decision re-derives the same ids.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.contracts.rewards import (
    CompensationGranted,
    CompensationGrantedData,
    CompensationReviewRequired,
    CompensationReviewRequiredData,
    PointsCreditRequested,
    PointsCreditRequestedData,
    RefundInstructed,
    RefundInstructedData,
    rewards_envelope,
)
from shared.money import format_money


def _facts(values: dict[str, Any]) -> dict[str, Any]:
    return {
        "compensation_id": str(values["compensation_id"]),
        "merchant_id": values["merchant_id"],
        "order_id": values["order_id"],
        "promise_kind": values["promise_kind"],
        "tier": values["tier"],
        "vouchers": list(values["vouchers"]),
        "points": values["points"],
        "refund_amount": format_money(values["refund_minor"], values["currency"]),
        "currency": values["currency"],
        "top_up": not values["new_breach"],
    }


def review_required(values: dict[str, Any]) -> CompensationReviewRequired:
    """A compensation held for a person, with the caps or rules that held it."""
    data = CompensationReviewRequiredData(**_facts(values), reasons=values["review_reasons"])
    return rewards_envelope(
        CompensationReviewRequired,
        values["customer_id"],
        values["compensation_id"],
        values["created_at"],
        data,
    )


def compensation_granted(values: dict[str, Any], at: datetime) -> CompensationGranted:
    data = CompensationGrantedData(**_facts(values), decided_by=values["decided_by"])
    return rewards_envelope(
        CompensationGranted, values["customer_id"], values["compensation_id"], at, data
    )


def compensation_points(values: dict[str, Any], at: datetime) -> PointsCreditRequested:
    """The points a compensation pays, credited by the points service once."""
    compensation_id = values["compensation_id"]
    data = PointsCreditRequestedData(
        credit_id=f"compensation:{compensation_id}",
        points=values["points"],
        reason=f"compensation: {values['promise_kind']}",
        merchant_id=values["merchant_id"],
    )
    return rewards_envelope(PointsCreditRequested, values["customer_id"], compensation_id, at, data)


def refund_instructed(values: dict[str, Any], at: datetime) -> RefundInstructed:
    data = RefundInstructedData(
        compensation_id=str(values["compensation_id"]),
        merchant_id=values["merchant_id"],
        order_id=values["order_id"],
        amount=format_money(values["refund_minor"], values["currency"]),
        currency=values["currency"],
    )
    return rewards_envelope(
        RefundInstructed, values["customer_id"], values["compensation_id"], at, data
    )
