"""The typed event builders give, byte for byte, the events the service always emitted.

Each expected event is built the way the service built it before the builders existed:
the contract model validating the (type, version, derived id, source, customer, data dict)
envelope. A builder that renamed, dropped or reformatted a field would differ here.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from services.rewards.claims.events import debit_requested, debit_reversal_requested
from services.rewards.compensation.events import (
    compensation_granted,
    compensation_points,
    refund_instructed,
    review_required,
)
from services.rewards.green_channel.events import (
    claim_escalated,
    claim_overdue,
    compensation_escalated,
    compensation_overdue,
)
from services.rewards.milestones.events import points_granted
from services.rewards.vouchers.events import reward_issued, voucher_expired, voucher_redeemed
from shared.contracts.envelope import EventEnvelope, derived_event_id
from shared.contracts.registry import EVENT_MODELS

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ID = uuid.UUID("5b3c1a52-7c1e-4f7a-9a64-2b9d0e6f5c21")


def _old(event_type: str, customer: str, cause: Any, data: dict[str, Any]) -> EventEnvelope:
    return EVENT_MODELS[(event_type, 1)].model_validate(
        {
            "event_id": derived_event_id(cause, event_type),
            "type": event_type,
            "version": 1,
            "occurred_at": AT,
            "source": "rewards",
            "customer_id": customer,
            "data": data,
        }
    )


COMPENSATION = {
    "compensation_id": ID,
    "customer_id": "c1",
    "merchant_id": "m1",
    "order_id": "o1",
    "promise_kind": "dish_wait_time",
    "tier": 2,
    "vouchers": ["fruit-plate"],
    "points": 300,
    "refund_minor": 1250,
    "currency": "EUR",
    "new_breach": False,
    "review_reasons": ["customer_refund_cap"],
    "created_at": AT,
    "decided_by": "policy",
}
FACTS = {
    "compensation_id": str(ID),
    "merchant_id": "m1",
    "order_id": "o1",
    "promise_kind": "dish_wait_time",
    "tier": 2,
    "vouchers": ["fruit-plate"],
    "points": 300,
    "refund_amount": "12.50",
    "currency": "EUR",
    "top_up": True,
}
CLAIM = SimpleNamespace(
    claim_id=ID,
    customer_id="c1",
    merchant_id="m1",
    order_id="o1",
    promise_kind="dish_wait_time",
    filed_at=AT - timedelta(hours=30),
    reason="order_unknown",
)
HELD = SimpleNamespace(
    compensation_id=ID,
    customer_id="c1",
    merchant_id="m1",
    order_id="o1",
    promise_kind="dish_wait_time",
    tier=2,
    review_reasons=[],
    created_at=AT - timedelta(hours=30),
)
VOUCHER = {
    "voucher_id": ID,
    "customer_id": "c1",
    "reward_code": "coffee",
    "origin": "milestone",
    "origin_ref": "milestone:c1:r1:1",
    "merchant_id": None,
    "issued_at": AT,
    "expires_at": AT + timedelta(days=30),
}


CASES: list[tuple[str, EventEnvelope, EventEnvelope]] = [
    (
        "review_required",
        review_required(COMPENSATION),
        _old(
            "compensation.review_required",
            "c1",
            ID,
            {**FACTS, "reasons": ["customer_refund_cap"]},
        ),
    ),
    (
        "compensation_granted",
        compensation_granted(COMPENSATION, AT),
        _old("compensation.granted", "c1", ID, {**FACTS, "decided_by": "policy"}),
    ),
    (
        "compensation_points",
        compensation_points(COMPENSATION, AT),
        _old(
            "points.credit_requested",
            "c1",
            ID,
            {
                "credit_id": f"compensation:{ID}",
                "points": 300,
                "reason": "compensation: dish_wait_time",
                "merchant_id": "m1",
            },
        ),
    ),
    (
        "refund_instructed",
        refund_instructed(COMPENSATION, AT),
        _old(
            "refund.instructed",
            "c1",
            ID,
            {
                "compensation_id": str(ID),
                "merchant_id": "m1",
                "order_id": "o1",
                "amount": "12.50",
                "currency": "EUR",
            },
        ),
    ),
    (
        "points_granted",
        points_granted("c1", 50, "milestone", "milestone:c1:r1:1", AT),
        _old(
            "points.credit_requested",
            "c1",
            "milestone:c1:r1:1",
            {
                "credit_id": "milestone:c1:r1:1",
                "points": 50,
                "reason": "milestone: milestone:c1:r1:1",
            },
        ),
    ),
    (
        "debit_requested",
        debit_requested("c1", ID, 120, "m1", "tea", AT),
        _old(
            "points.debit_requested",
            "c1",
            ID,
            {"debit_id": str(ID), "points": 120, "merchant_id": "m1", "reference": "catalogue:tea"},
        ),
    ),
    (
        "debit_reversal_requested",
        debit_reversal_requested("c1", ID, "points_timeout", derived_event_id(ID, "t"), AT),
        _old(
            "points.debit_reversal_requested",
            "c1",
            derived_event_id(ID, "t"),
            {"debit_id": str(ID), "reason": "points_timeout"},
        ),
    ),
    (
        "reward_issued",
        reward_issued(VOUCHER),
        _old(
            "reward.issued",
            "c1",
            ID,
            {
                "voucher_id": str(ID),
                "reward_code": "coffee",
                "origin": "milestone",
                "origin_ref": "milestone:c1:r1:1",
                "merchant_id": None,
                "issued_at": AT,
                "expires_at": AT + timedelta(days=30),
            },
        ),
    ),
    (
        "voucher_redeemed",
        voucher_redeemed(SimpleNamespace(**VOUCHER), "m1", "s1", AT),
        _old(
            "voucher.redeemed",
            "c1",
            ID,
            {
                "voucher_id": str(ID),
                "reward_code": "coffee",
                "merchant_id": "m1",
                "store_id": "s1",
                "redeemed_at": AT,
            },
        ),
    ),
    (
        "voucher_expired",
        voucher_expired(SimpleNamespace(**VOUCHER), AT),
        _old(
            "voucher.expired",
            "c1",
            derived_event_id(ID, "expiry"),
            {"voucher_id": str(ID), "reward_code": "coffee", "expired_at": AT + timedelta(days=30)},
        ),
    ),
    (
        "claim_escalated",
        claim_escalated(CLAIM, AT),
        _old(
            "claim.escalated",
            "c1",
            ID,
            {
                "claim_id": str(ID),
                "merchant_id": "m1",
                "order_id": "o1",
                "promise_kind": "dish_wait_time",
                "filed_at": CLAIM.filed_at,
                "decide_by": CLAIM.filed_at + timedelta(hours=24),
            },
        ),
    ),
    (
        "compensation_escalated",
        compensation_escalated(HELD, AT),
        _old(
            "compensation.escalated",
            "c1",
            ID,
            {
                "compensation_id": str(ID),
                "merchant_id": "m1",
                "order_id": "o1",
                "promise_kind": "dish_wait_time",
                "tier": 2,
                "reasons": ["held"],
                "held_since": HELD.created_at,
                "decide_by": HELD.created_at + timedelta(hours=24),
            },
        ),
    ),
]
_OVERDUE = {
    "merchant_id": "m1",
    "order_id": "o1",
    "promise_kind": "dish_wait_time",
}
CASES += [
    (
        "claim_overdue",
        claim_overdue(CLAIM, AT),
        _old(
            "review.overdue",
            "c1",
            ID,
            {
                "subject": "claim",
                "subject_id": str(ID),
                **_OVERDUE,
                "since": CLAIM.filed_at,
                "decide_by": CLAIM.filed_at + timedelta(hours=24),
                "reasons": ["order_unknown"],
            },
        ),
    ),
    (
        "compensation_overdue",
        compensation_overdue(HELD, AT),
        _old(
            "review.overdue",
            "c1",
            ID,
            {
                "subject": "compensation",
                "subject_id": str(ID),
                **_OVERDUE,
                "since": HELD.created_at,
                "decide_by": HELD.created_at + timedelta(hours=24),
                "reasons": [],
            },
        ),
    ),
]


@pytest.mark.parametrize(("builder", "built", "expected"), CASES, ids=[c[0] for c in CASES])
def test_a_builder_gives_the_event_the_service_always_emitted(
    builder: str, built: EventEnvelope, expected: EventEnvelope
) -> None:
    assert type(built) is type(expected), builder
    assert built.model_dump_json() == expected.model_dump_json(), builder
