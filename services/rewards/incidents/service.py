"""service.incident -> the merchant's guarantee policy -> compensation, once per breach.

An incident for a promise the merchant makes no policy for, or a kept promise, owes
nothing. A measurement the policy cannot judge (minutes against a yes/no promise) can
never pass, so that incident is dead-lettered with its reason.

Incidents are checked against the recorded order (`orders`), never trusted for money:
compensation is computed on the recorded amount and currency, whatever the incident
states; an incident naming another customer's or another merchant's order is
dead-lettered; one on an order returned in full owes nothing; one for an order not
recorded yet is held (`order_unknown`) and judged on
the recorded amount when the purchase arrives (`release_held_reports`), exactly once.

A run of incidents is judged as one batch (`domain.breach_book.BreachBook`): policies and limits
come from the configuration cache (`uow.config`: one version read per consumer batch while
nobody changes them, `configuration.service`), every party is locked in one
statement, every breach read in one, and the results written with one statement per
table, in the order the incidents arrived.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from services.rewards.compensation.service import deliver_assessed
from services.rewards.domain.breach_book import Assessment, BreachReport
from services.rewards.domain.errors import RewardsRuleError
from services.rewards.domain.guarantee import GuaranteePolicy, PromiseKind
from services.rewards.domain.guarantee_claims import KnownOrder, order_problem
from services.rewards.domain.guarantee_limits import CompensationLimits
from services.rewards.orders.repository import held_values
from services.rewards.policies.service import measurement, promise_kind
from shared.contracts.pos import ServiceIncident
from shared.errors import DomainError, RejectedEvent

if TYPE_CHECKING:
    from services.rewards.uow import RewardsUnitOfWork

log = logging.getLogger(__name__)


def report_of(event: ServiceIncident) -> BreachReport | None:
    """The breach an incident reports; None when no policy can exist for its promise."""
    data = event.data
    kind = promise_kind(data.promise_kind)
    if kind is None:
        return None
    try:
        measured = measurement(data.measured.value, data.measured.unit.value)
    except (DomainError, RewardsRuleError) as error:
        raise RejectedEvent(event, "measurement_invalid", str(error)) from error
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
    uow: RewardsUnitOfWork, wanted: set[PolicyKey]
) -> dict[PolicyKey, GuaranteePolicy | None]:
    """The policies `wanted`, as of this batch (`uow.config`)."""
    return await uow.config.policies(uow, wanted)


async def batch_limits(
    uow: RewardsUnitOfWork, merchants: set[str]
) -> dict[str, CompensationLimits]:
    """The merchants' compensation caps, as of this batch (`uow.config`)."""
    return await uow.config.limits(uow, merchants)


@dataclass(frozen=True)
class Judgement:
    """One report to judge: its policy, why a person must look anyway, and its event."""

    report: BreachReport
    policy: GuaranteePolicy
    force_review: str | None = None
    event: ServiceIncident | None = None


def on_record(report: BreachReport, order: KnownOrder) -> BreachReport:
    """The report with the recorded order's amount (after returns) and currency."""
    return replace(report, order_amount_minor=order.net_amount_minor, currency=order.currency)


async def apply_incidents(uow: RewardsUnitOfWork, events: Sequence[ServiceIncident]) -> None:
    """Judge a run of incidents in order, as one batch of reads and writes."""
    reports = [(event, report) for event in events if (report := report_of(event)) is not None]
    policies = await batch_policies(uow, {(r.merchant_id, r.promise) for _, r in reports})
    # The party locks come before the order is read: a purchase recorded by another instance
    # (another partition) at this moment either is seen here or sees the held report.
    await uow.compensations.lock_parties(
        (r.merchant_id for _, r in reports), (r.customer_id for _, r in reports)
    )
    known = await uow.orders.recorded(r.order_id for _, r in reports)
    judged = []
    for event, report in reports:
        policy = policies[(report.merchant_id, report.promise)]
        order = known.get(report.order_id)
        if policy is None:
            log.info("incident %s: %s makes no such promise", event.event_id, report.merchant_id)
        elif order is None:
            await uow.orders.hold(_held(report))
        else:
            problem = order_problem(report.customer_id, report.merchant_id, report.order_id, order)
            if problem is not None:
                assert problem.reason is not None
                raise RejectedEvent(event, problem.reason.value, problem.explanation)
            if order.returned_in_full:
                log.info(
                    "incident %s: order %s was returned in full", event.event_id, order.order_id
                )
                continue
            judged.append(Judgement(on_record(report, order), policy, event=event))
    await judge(uow, judged, locked=True)  # every party of `judged` is locked above


def _held(report: BreachReport) -> dict[str, Any]:
    return held_values(
        report.trigger_ref,
        report.order_id,
        report.customer_id,
        report.merchant_id,
        report.promise.value,
        report.measured,
        report.trigger,
        report.at,
    )


async def judge(
    uow: RewardsUnitOfWork, judged: Sequence[Judgement], *, locked: bool = False
) -> list[Assessment]:
    """Lock every party, judge each report in order against one book, write and deliver.

    `locked`: the caller already holds every party's lock in this transaction (advisory
    locks are re-entrant, so taking them again only costs a round trip per batch).
    """
    if not judged:
        return []
    merchants = [j.report.merchant_id for j in judged]
    if not locked:
        await uow.compensations.lock_parties(merchants, (j.report.customer_id for j in judged))
    limits = await batch_limits(uow, set(merchants))
    values = await uow.config.voucher_values(uow)
    book = await uow.compensations.load_book([j.report for j in judged], limits, values)
    assessments = []
    for item in judged:
        try:
            assessments.append(book.assess(item.report, item.policy, item.force_review))
        except RewardsRuleError as error:
            if item.event is None:
                raise
            raise RejectedEvent(item.event, error.code, str(error)) from error
    await deliver_assessed(uow, await uow.compensations.write_book(book))
    return assessments
