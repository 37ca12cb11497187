"""service.incident -> the merchant's guarantee policy -> compensation, once per breach.

An incident for a promise the merchant makes no policy for, or a kept promise, owes
nothing. A measurement the policy cannot judge (minutes against a yes/no promise) can
never pass, so that incident is dead-lettered with its reason.

A run of incidents is judged as one batch (`breach_book.BreachBook`): policies and limits
are read once per consumer batch (kept in `ctx.state`), every party is locked in one
statement, every breach read in one, and the results written with one statement per
table, in the order the incidents arrived.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from services.rewards.breach_book import BreachBook
from services.rewards.compensation import BreachReport, Delivery, deliver_assessed, lock_parties
from services.rewards.domain.errors import RewardsRuleError
from services.rewards.domain.guarantee import GuaranteePolicy, PromiseKind
from services.rewards.domain.guarantee_limits import CompensationLimits
from services.rewards.policies import load_limits_of, load_policies, measurement, promise_kind
from shared.contracts.pos import ServiceIncident
from shared.errors import DomainError, PoisonEvent
from shared.kafka.handlers import BatchContext

log = logging.getLogger(__name__)
_POLICIES = "rewards.guarantee_policies"
_LIMITS = "rewards.compensation_limits"


class RejectedIncident(PoisonEvent):
    """An incident that can never be judged; names itself so only it is dead-lettered."""

    def __init__(self, event: ServiceIncident, code: str, message: str) -> None:
        super().__init__(code, message)
        self.event_id = event.event_id


def report_of(event: ServiceIncident) -> BreachReport | None:
    """The breach an incident reports; None when no policy can exist for its promise."""
    data = event.data
    kind = promise_kind(data.promise_kind)
    if kind is None:
        return None
    try:
        measured = measurement(data.measured.value, data.measured.unit.value)
    except (DomainError, RewardsRuleError) as error:
        raise RejectedIncident(event, "measurement_invalid", str(error)) from error
    return BreachReport(
        customer_id=event.customer_id,
        merchant_id=data.merchant_id,
        order_id=data.order_id,
        promise=kind,
        measured=measured,
        order_amount_minor=data.order_amount_minor,
        currency=data.currency,
        trigger="incident",
        trigger_ref=f"incident:{data.incident_id}",
        at=event.occurred_at,
    )


PolicyKey = tuple[str, PromiseKind]


async def batch_policies(
    ctx: BatchContext, wanted: set[PolicyKey]
) -> dict[PolicyKey, GuaranteePolicy | None]:
    """The policies `wanted`, read at most once per consumer batch."""
    known: dict[PolicyKey, GuaranteePolicy | None] = ctx.state.setdefault(_POLICIES, {})
    missing = wanted - known.keys()
    if missing:
        known.update(await load_policies(ctx.conn, missing))
    return known


async def batch_limits(ctx: BatchContext, merchants: set[str]) -> dict[str, CompensationLimits]:
    """The merchants' compensation caps, read at most once per consumer batch."""
    known: dict[str, CompensationLimits] = ctx.state.setdefault(_LIMITS, {})
    missing = merchants - known.keys()
    if missing:
        known.update(await load_limits_of(ctx.conn, missing))
    return known


async def apply_incidents(
    ctx: BatchContext, events: Sequence[ServiceIncident], delivery: Delivery
) -> None:
    """Judge a run of incidents in order, as one batch of reads and writes."""
    reports = [(event, report) for event in events if (report := report_of(event)) is not None]
    policies = await batch_policies(ctx, {(r.merchant_id, r.promise) for _, r in reports})
    judged = []
    for event, report in reports:
        policy = policies[(report.merchant_id, report.promise)]
        if policy is None:
            log.info("incident %s: %s makes no such promise", event.event_id, report.merchant_id)
        else:
            judged.append((event, report, policy))
    if not judged:
        return
    await lock_parties(
        ctx.conn, (r.merchant_id for _, r, _ in judged), (r.customer_id for _, r, _ in judged)
    )
    limits = await batch_limits(ctx, {r.merchant_id for _, r, _ in judged})
    book = await BreachBook.load(ctx.conn, [r for _, r, _ in judged], limits)
    for event, report, policy in judged:
        try:
            book.assess(report, policy)
        except RewardsRuleError as error:
            raise RejectedIncident(event, error.code, str(error)) from error
    await deliver_assessed(ctx.conn, delivery, await book.write(ctx.conn))
