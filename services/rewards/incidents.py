"""service.incident -> the merchant's guarantee policy -> compensation, once per breach.

An incident for a promise the merchant makes no policy for, or a kept promise, owes
nothing. A measurement the policy cannot judge (minutes against a yes/no promise) can
never pass, so that incident is dead-lettered with its reason.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from services.rewards.compensation import BreachReport, Delivery, assess_breach, lock_parties
from services.rewards.domain.errors import RewardsRuleError
from services.rewards.policies import load_policy, measurement, promise_kind
from shared.contracts.pos import ServiceIncident
from shared.errors import DomainError, PoisonEvent
from shared.kafka.handlers import BatchContext

log = logging.getLogger(__name__)


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


async def apply_incidents(
    ctx: BatchContext, events: Sequence[ServiceIncident], delivery: Delivery
) -> None:
    """Judge each incident in order; the run's parties are locked up front, in order."""
    reports = [(event, report_of(event)) for event in events]
    known = [(e, r) for e, r in reports if r is not None]
    await lock_parties(
        ctx.conn, (r.merchant_id for _, r in known), (r.customer_id for _, r in known)
    )
    for event, report in known:
        policy = await load_policy(ctx.conn, report.merchant_id, report.promise)
        if policy is None:
            log.info("incident %s: %s makes no such promise", event.event_id, report.merchant_id)
            continue
        try:
            await assess_breach(ctx.conn, delivery, report, policy)
        except RewardsRuleError as error:
            raise RejectedIncident(event, error.code, str(error)) from error
