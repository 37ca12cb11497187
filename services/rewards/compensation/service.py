"""Guarantee compensation: one evaluation for incidents and claims, exactly once per breach.

`assess_breach` is the single path from a measured promise to compensation:
1. the merchant's policy for the promise (none: nothing owed);
2. the breach row for (order, promise), locked; new -> everything the measurement earns,
   known -> only the top-up a worse measurement adds (`domain.guarantee.top_up`);
3. the caps (customer 30 days, merchant month): within them the compensation is granted
   and delivered at once, over them it waits in manual review (never dropped);
4. one `compensations` row per (breach, tier), so the same tier is never paid twice.

Lock order, the same for consumers, HTTP requests and admins so they never deadlock:
merchant (advisory), customer (advisory), then the breach row. The two advisory locks
make the cap check and the grant one step: two claims of one customer cannot both
slip under the cap.

Incidents arrive in batches and take the same path for the whole batch at once
(`domain.breach_book.BreachBook`, loaded and written by `compensation.repository`): every
lock in one statement, every breach in one read, judged in order in memory, written with
one statement per table.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from services.rewards.compensation.events import (
    compensation_granted,
    compensation_points,
    refund_instructed,
    review_required,
)
from services.rewards.domain.breach_book import Assessment, BreachReport
from services.rewards.domain.guarantee import GuaranteePolicy, owed_at_tier
from services.rewards.policies.service import promise_kind
from services.rewards.vouchers.service import VoucherRequest, issue_vouchers
from shared.contracts.envelope import EventEnvelope

if TYPE_CHECKING:
    from services.rewards.uow import RewardsUnitOfWork


async def assess_breach(
    uow: RewardsUnitOfWork,
    report: BreachReport,
    policy: GuaranteePolicy,
    *,
    force_review: str | None = None,
) -> Assessment:
    """Evaluate `report` against `policy` once per breach; grant, or hold for review.

    The caller holds the merchant and customer locks (`lock_parties`). `force_review`
    names a reason to hold the compensation for a person even within the caps. This is
    a batch of one through `BreachBook`, the path incidents take in batches.
    """
    limits = await uow.config.limits(uow, {report.merchant_id})
    values = await uow.config.voucher_values(uow)
    book = await uow.compensations.load_book([report], limits, values)
    assessment = book.assess(report, policy, force_review)
    await deliver_assessed(uow, await uow.compensations.write_book(book))
    return assessment


async def deliver_assessed(uow: RewardsUnitOfWork, assessed: Sequence[dict[str, Any]]) -> None:
    """Pay the granted compensations and announce the held ones, in the order given."""
    granted = [values for values in assessed if values["status"] == "granted"]
    # Each was written by this transaction as new, or held until now: none paid before.
    issued = await _issue_vouchers(uow, granted, fresh=True)
    for values in assessed:
        if values["status"] == "granted":
            _emit_payment(uow, values, issued)
        else:
            uow.emit_rewards(review_required(values))


async def deliver(uow: RewardsUnitOfWork, values: dict[str, Any], now: datetime) -> None:
    """Pay one granted compensation (an admin's approval) at `now`."""
    issued = await _issue_vouchers(uow, [values], now)
    _emit_payment(uow, values, issued, now)


async def refund_on_record(uow: RewardsUnitOfWork, row: Any) -> int:
    """The refund a held compensation may pay now: the breach in all never pays more than
    its highest granted tier earns on the order as recorded today (after returns).

    A held part was computed on the order when it was judged; a return since then lowers
    it, so approving from the review queue pays what the record supports, never more.
    Without the policy or the order record the stored amount stands.
    """
    kind = promise_kind(row.promise_kind)
    policy = await uow.policies.policy(row.merchant_id, kind) if kind else None
    order = (await uow.orders.recorded([row.order_id])).get(row.order_id)
    if policy is None or order is None or not row.refund_minor:
        return int(row.refund_minor)
    paid, top = await uow.compensations.granted_beside(row)
    # The breach in all may pay what its highest granted tier earns on the order today.
    tier = max(int(row.tier), top)
    ceiling = owed_at_tier(policy, tier, order.net_amount_minor).refund_minor
    return min(int(row.refund_minor), max(0, ceiling - paid))


def _origin_ref(values: dict[str, Any], reward_code: str) -> str:
    """The voucher's origin: one per (compensation, reward), so it is never issued twice."""
    return f"compensation:{values['compensation_id']}:{reward_code}"


def _voucher_requests(values: dict[str, Any], at: datetime | None = None) -> list[VoucherRequest]:
    return [
        VoucherRequest(
            values["customer_id"],
            reward_code,
            "guarantee",
            _origin_ref(values, reward_code),
            merchant_id=values["merchant_id"],
            issued_at=at or values["decided_at"],
        )
        for reward_code in values["vouchers"]
    ]


async def _issue_vouchers(
    uow: RewardsUnitOfWork,
    granted: Sequence[dict[str, Any]],
    now: datetime | None = None,
    *,
    fresh: bool = False,
) -> dict[str, EventEnvelope | None]:
    """Every voucher the compensations owe, with one insert; events by origin reference.

    Vouchers are issued at the compensation's decision time unless `now` says otherwise;
    `fresh`: no compensation of `granted` was paid before (`issue_vouchers`).
    """
    requests = [r for values in granted for r in _voucher_requests(values, now)]
    if not requests:
        return {}
    fallback = now or granted[0]["decided_at"]  # every request carries its own time
    issued = await issue_vouchers(uow, requests, fallback, fresh=fresh)
    return {r.origin_ref: i.event for r, i in zip(requests, issued, strict=True)}


def _emit_payment(
    uow: RewardsUnitOfWork,
    values: dict[str, Any],
    issued: dict[str, EventEnvelope | None],
    now: datetime | None = None,
) -> None:
    """Vouchers' `reward.issued`, then points and money as events, then the grant itself."""
    at = now or values["decided_at"]
    for reward_code in values["vouchers"]:
        event = issued.get(_origin_ref(values, reward_code))
        if event is not None:
            uow.emit_rewards(event)
    if values["points"]:
        uow.emit_rewards(compensation_points(values, at))
    if values["refund_minor"]:
        uow.emit_rewards(refund_instructed(values, at))
    uow.emit_rewards(compensation_granted(values, at))
