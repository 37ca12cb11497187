"""Events of redemptions: points spent or given back, at a partner or for a catalogue claim.

A partner's redemption is announced by `points.redeemed` / `points.redemption_cancelled`;
a catalogue claim's debit by the saga's answers to rewards (`points.debited`,
`points.debit_rejected`, `points.debit_reversed`), whose ids derive from the debit, so a
re-sent answer is deduplicated by rewards.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.points.domain.book import Account
from services.points.ledger.events import SOURCE, points_event, snapshot
from shared.contracts.envelope import derived_event_id
from shared.contracts.points import (
    PointsDebited,
    PointsDebitedData,
    PointsDebitRejected,
    PointsDebitRejectedData,
    PointsDebitReversed,
    PointsDebitReversedData,
    PointsRedeemed,
    PointsRedemptionCancelled,
)
from shared.contracts.rewards import PointsDebitRequested, PointsDebitReversalRequested


def points_redeemed(account: Account, redemption: dict[str, Any], at: datetime) -> PointsRedeemed:
    data = {**snapshot(account, at), **redemption}
    cause = f"redemption:{redemption['redemption_id']}"
    return points_event(PointsRedeemed, "points.redeemed", cause, account, at, data)


def points_redemption_cancelled(
    account: Account, redemption_id: str, merchant_id: str, points: int, at: datetime
) -> PointsRedemptionCancelled:
    data = snapshot(account, at)
    data.update(redemption_id=redemption_id, merchant_id=merchant_id, points=points)
    cause = f"redemption:{redemption_id}"
    event_type = "points.redemption_cancelled"
    return points_event(PointsRedemptionCancelled, event_type, cause, account, at, data)


def _answer(debit_id: str, purpose: str, customer_id: str, at: datetime) -> dict[str, Any]:
    return {
        "event_id": derived_event_id(f"debit:{debit_id}", purpose),
        "version": 1,
        "occurred_at": at,
        "source": SOURCE,
        "customer_id": customer_id,
    }


def points_debited(
    account: Account, request: PointsDebitRequested, redemption_id: str, at: datetime
) -> PointsDebited:
    """The claim's points were spent (the redemption `redemption_id`)."""
    data = PointsDebitedData(
        **snapshot(account, at),
        debit_id=request.data.debit_id,
        redemption_id=redemption_id,
        merchant_id=request.data.merchant_id,
        points=request.data.points,
    )
    envelope = _answer(request.data.debit_id, "answer", account.customer_id, at)
    return PointsDebited(type="points.debited", data=data, **envelope)


def points_debit_rejected(
    account: Account, request: PointsDebitRequested, reason: str, at: datetime
) -> PointsDebitRejected:
    """Nothing was spent for the claim (`reason`: the domain's code, e.g. not enough points)."""
    data = PointsDebitRejectedData(
        **snapshot(account, at),
        debit_id=request.data.debit_id,
        points=request.data.points,
        reason=reason,
    )
    envelope = _answer(request.data.debit_id, "answer", account.customer_id, at)
    return PointsDebitRejected(type="points.debit_rejected", data=data, **envelope)


def points_not_debited(
    account: Account, request: PointsDebitReversalRequested, at: datetime
) -> PointsDebitRejected:
    """The answer to a reversal of a debit never made: nothing spent, nothing to give back.

    Its id differs from the debit's own answer, so a debit rejected earlier (whose
    answer already went out with other balances) is not contradicted under the same id."""
    data = PointsDebitRejectedData(
        **snapshot(account, at), debit_id=request.data.debit_id, reason="not_debited"
    )
    envelope = _answer(request.data.debit_id, "not_debited", account.customer_id, at)
    return PointsDebitRejected(type="points.debit_rejected", data=data, **envelope)


def points_debit_reversed(
    account: Account,
    request: PointsDebitReversalRequested,
    redemption_id: str,
    points: int,
    at: datetime,
) -> PointsDebitReversed:
    """The claim's debit was given back to the lots it came from."""
    data = PointsDebitReversedData(
        **snapshot(account, at),
        debit_id=request.data.debit_id,
        redemption_id=redemption_id,
        points=points,
    )
    envelope = _answer(request.data.debit_id, "reversed", account.customer_id, at)
    return PointsDebitReversed(type="points.debit_reversed", data=data, **envelope)
