"""Property: whatever order purchases, returns, incidents, claims and reviews arrive in for
one customer's order, compensation never exceeds what the policy allows for the order
rewards recorded, and a customer's own report is paid automatically only up to the policy's
self-reported maximum unless an incident measured as much.

Drives the evaluation layer the service runs (`BreachBook.assess`, the same object the
consumer and HTTP claims use, minus the database), with the service's rules around it:
reports for an order not recorded yet are held and released when the purchase arrives
(claims then only for a person), amounts always come from the record after returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.rewards.domain.breach_book import BreachBook, BreachReport
from services.rewards.domain.guarantee import (
    GuaranteePolicy,
    GuaranteeTier,
    Measurement,
    MeasureUnit,
    PointsCompensation,
    PromiseKind,
    RefundCompensation,
    VoucherCompensation,
    owed_at_tier,
)
from services.rewards.domain.guarantee_claims import KnownOrder
from services.rewards.domain.guarantee_limits import CompensationLimits
from services.rewards.incidents.service import on_record
from services.rewards.orders.repository import ORDER_UNKNOWN

START = datetime(2026, 6, 1, 12, tzinfo=UTC)
MERCHANT, CUSTOMER, ORDER = "m-prop", "c-prop", "o-prop"


def _policy(max_tier: int) -> GuaranteePolicy:
    return GuaranteePolicy(
        merchant_id=MERCHANT,
        promise=PromiseKind.DISH_WAIT_TIME,
        unit=MeasureUnit.MINUTES,
        tiers=(
            GuaranteeTier(10, (VoucherCompensation("fruit-plate"),)),
            GuaranteeTier(15, (RefundCompensation(2_000), PointsCompensation(100))),
            GuaranteeTier(20, (RefundCompensation(20_000), PointsCompensation(300))),
        ),
        self_reported_max_tier=max_tier,
    )


@dataclass
class Simulation:
    """The service's rules around one book: record, hold, release, assess, review."""

    policy: GuaranteePolicy
    book: BreachBook = field(init=False)
    recorded: int | None = None  # the purchase amount as first recorded
    returned: int = 0
    held: list[BreachReport] = field(default_factory=list)
    incident_tiers: list[int] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    clock: datetime = START

    def __post_init__(self) -> None:
        self.book = BreachBook({MERCHANT: CompensationLimits()}, {})

    def tick(self) -> datetime:
        self.clock += timedelta(minutes=1)
        return self.clock

    def report(self, trigger: str, minutes: int, stated_minor: int) -> BreachReport:
        return BreachReport(
            CUSTOMER,
            MERCHANT,
            ORDER,
            PromiseKind.DISH_WAIT_TIME,
            Measurement.seconds(minutes * 60),
            stated_minor,  # what the caller states; replaced by the record before judging
            "EUR",
            trigger,
            f"{trigger}:{len(self.rows)}:{self.clock.isoformat()}",
            self.tick(),
        )

    def judge(self, report: BreachReport, force_review: str | None = None) -> None:
        assert self.recorded is not None, "nothing is judged before the order is recorded"
        order = KnownOrder(ORDER, CUSTOMER, MERCHANT, START, self.recorded, "EUR", self.returned)
        recorded = on_record(report, order)  # the service's own substitution of the amount
        if report.trigger == "incident":
            self.incident_tiers.append(self.policy.tiers_reached(report.measured))
        self.book.assess(recorded, self.policy, force_review)
        self.rows.extend(self.book.assessed)  # held parts stay in `book.held`, as in a batch
        self.book.assessed.clear()
        self.book.confirmed.clear()

    def apply(self, step: tuple[Any, ...]) -> None:
        kind = step[0]
        if kind == "purchase" and self.recorded is None:
            self.recorded = step[1]
            waiting, self.held = self.held, []
            for report in waiting:
                self.judge(report, ORDER_UNKNOWN if report.trigger == "claim" else None)
        elif kind == "return":
            self.returned += step[1]
        elif kind in ("incident", "claim"):
            report = self.report(kind, step[1], step[2])
            if self.recorded is None:
                self.held.append(report)
            else:
                self.judge(report)
        elif kind == "review":
            held = [r for r in self.rows if r["status"] == "in_review"]
            if held:
                row = held[step[1] % len(held)]
                row.update(status="granted" if step[2] else "rejected", decided_by="admin:p")


MINUTES = st.integers(min_value=0, max_value=40)
STATED = st.integers(min_value=0, max_value=10**9)
STEPS = st.one_of(
    st.tuples(st.just("purchase"), st.integers(min_value=0, max_value=100_000)),
    st.tuples(st.just("return"), st.integers(min_value=0, max_value=60_000)),
    st.tuples(st.just("incident"), MINUTES, STATED),
    st.tuples(st.just("claim"), MINUTES, STATED),
    st.tuples(st.just("review"), st.integers(min_value=0, max_value=10), st.booleans()),
)


@settings(max_examples=400, deadline=None)
@given(st.integers(min_value=0, max_value=3), st.lists(STEPS, min_size=1, max_size=25))
def test_compensation_never_exceeds_what_the_policy_allows_for_the_recorded_order(
    max_tier: int, steps: list[tuple[Any, ...]]
) -> None:
    sim = Simulation(_policy(max_tier))
    for step in steps:
        sim.apply(step)
    if sim.recorded is None:
        assert sim.rows == [], "an order never recorded is never compensated"
        return
    most = owed_at_tier(sim.policy, len(sim.policy.tiers), sim.recorded)
    assert sum(r["refund_minor"] for r in sim.rows) <= most.refund_minor, (
        "every refund, paid or held, stays within the top tier on the recorded amount"
    )
    assert sum(r["points"] for r in sim.rows) <= most.points
    tiers = [r["tier"] for r in sim.rows]
    assert len(tiers) == len(set(tiers)), "each tier of a breach is paid at most once"
    vouchers = [code for r in sim.rows for code in r["vouchers"]]
    assert len(vouchers) == len(set(vouchers)), "a voucher line is never granted twice"
    automatic = [r for r in sim.rows if r["status"] == "granted" and r["decided_by"] != "admin:p"]
    trusted = max([sim.policy.self_reported_max_tier, *sim.incident_tiers])
    assert all(r["tier"] <= trusted for r in automatic), (
        "without a person, a tier is paid only as far as an incident or the self-report cap"
    )
    held_claims = [
        r for r in sim.rows if r["trigger"] == "claim" and ORDER_UNKNOWN in r["review_reasons"]
    ]
    assert all(r["status"] != "granted" or r["decided_by"] == "admin:p" for r in held_claims), (
        "a claim filed before its order was recorded is paid only by a person"
    )
