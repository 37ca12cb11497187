"""Guarantee compensation for a whole batch, judged in memory (pure: no I/O).

A `BreachBook` holds what a run of reports needs: the breaches they touch, the caps'
usage (the customers' grants in their 30-day windows, the merchants' spend per budget
month) and the held self-reported parts. `compensation.repository` loads it (locking the
breach rows, in a fixed handful of statements whatever the batch holds) and writes what
it changed (`drain`) with one statement per table. Each report is judged in order
against the book as the earlier reports of the batch left it, so a top-up in the same
batch sees the first payment, and the caps count what the batch already granted.

The guarantees are the ones `assess_breach` always gave: the caller holds the merchant and
customer locks until commit, so caps and budgets are exact under concurrency;
`(breach, tier)` stays unique in the database; a replayed event never reaches here
(processed events).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.rewards.domain.guarantee import (
    CompensationSet,
    GrantedCompensation,
    GuaranteePolicy,
    Measurement,
    MeasureUnit,
    PromiseKind,
    breach_key,
    evaluate,
    owed_at_tier,
    top_up,
    trusted_measurement,
)
from services.rewards.domain.guarantee_limits import (
    CUSTOMER_CAP_WINDOW,
    CompensationLimits,
    CustomerUsage,
    budget_month,
    customer_window_start,
    route_compensation,
)
from services.rewards.domain.keys import derived_uuid

SELF_REPORTED = "self_reported"  # the review reason of a customer's own report above its cap


@dataclass(frozen=True)
class _Granted:
    """A granted compensation, as the customer caps count it."""

    decided_at: datetime
    money_minor: int  # refund plus voucher value
    breach_key: str
    points: int = 0


@dataclass(frozen=True)
class GrantTotals:
    """A customer's grants decided inside (start, end), summed: the part of the cap window
    every report of a batch shares, read as one row instead of one row per grant."""

    start: datetime
    end: datetime
    money_minor: int
    points: int
    breach_keys: frozenset[str]


_COMPENSATION_NAMESPACE = uuid.UUID("b4a7f0c6-1d1e-4a8e-8f7e-6c1c2b3a9d10")


def compensation_id_for(key: str, tier: int) -> uuid.UUID:
    """The id of the payment bringing breach `key` up to `tier`: the same cause, the same id."""
    return derived_uuid(_COMPENSATION_NAMESPACE, f"{key}#{tier}")


@dataclass(frozen=True)
class BreachReport:
    """A measured promise on an order, from an incident event or a customer's claim."""

    customer_id: str
    merchant_id: str
    order_id: str
    promise: PromiseKind
    measured: Measurement
    order_amount_minor: int
    currency: str
    trigger: str  # "incident" or "claim"
    trigger_ref: str
    at: datetime

    @property
    def self_reported(self) -> bool:
        """A customer's own word (a claim), as opposed to a measurement by operations."""
        return self.trigger == "claim"


@dataclass(frozen=True)
class Assessment:
    """What one report led to: the compensation row (if any) and its status."""

    compensation_id: uuid.UUID | None
    status: str  # "granted", "in_review" or "nothing_owed"
    compensation: CompensationSet
    granted_id: uuid.UUID | None = None  # the part paid at once, when another part is held


@dataclass
class BreachRow:
    """A breach row as it stands at this point of the batch."""

    row: dict[str, Any]
    stored: bool  # already in the database before this batch
    changed: bool = False

    @property
    def granted(self) -> GrantedCompensation:
        unit = MeasureUnit(self.row["worst_unit"])
        owed = CompensationSet(
            self.row["tier"],
            frozenset(self.row["vouchers"]),
            self.row["points"],
            self.row["refund_minor"],
        )
        return GrantedCompensation(Measurement(self.row["worst_value"], unit), owed)


@dataclass(frozen=True)
class BookChanges:
    """What a book changed: new and changed breach rows, new and confirmed compensations."""

    fresh_breaches: list[dict[str, Any]]
    changed_breaches: list[dict[str, Any]]
    assessed: list[dict[str, Any]]
    confirmed: list[dict[str, Any]]


def needs_customer_usage(limits: CompensationLimits) -> bool:
    caps = (
        limits.customer_refund_cap_minor,
        limits.customer_breach_cap,
        limits.customer_points_cap,
    )
    return any(cap is not None for cap in caps)


def needs_merchant_months(limits: CompensationLimits) -> bool:
    caps = (limits.merchant_monthly_budget_minor, limits.merchant_monthly_points_budget)
    return any(cap is not None for cap in caps)


@dataclass
class BreachBook:
    """The breaches and cap usage a run of reports needs, loaded once, kept up to date."""

    limits: dict[str, CompensationLimits]
    breaches: dict[str, BreachRow]
    # The caps' usage per customer: grants summed over the window every report of the batch
    # shares, and one by one the grants outside it (and the ones this batch grants).
    customer_totals: dict[str, GrantTotals] = field(default_factory=dict)
    customer_grants: dict[str, list[_Granted]] = field(default_factory=dict)
    merchant_months: dict[tuple[str, datetime], tuple[int, int]] = field(default_factory=dict)
    assessed: list[dict[str, Any]] = field(default_factory=list)  # compensation rows, in order
    voucher_values: dict[str, int] = field(default_factory=dict)
    # Parts of a customer's own report held until an incident confirms them, per breach.
    held: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    confirmed: list[dict[str, Any]] = field(default_factory=list)  # held rows now decided
    _month: tuple[datetime, datetime] | None = field(default=None, repr=False)

    def usage(self, customer_id: str, now: datetime) -> CustomerUsage:
        """What counts against the customer's caps for a grant decided at `now`.

        The 30 days before `now`, and also grants decided after `now`, up to 30 days later:
        reports are dated by their cause (an incident's time, a claim's filing), so a late
        incident can be decided after a later-dated claim was granted. Counting only the
        window ending at `now` would let the two together exceed the cap in the window
        that holds both; counting both sides can only send more to a person, never pay more.
        """
        start, end = customer_window_start(now), now + CUSTOMER_CAP_WINDOW
        totals = self.customer_totals.get(customer_id)
        money = points = 0
        counted: frozenset[str] = frozenset()
        if totals is not None:
            # Loaded for the reports of this batch, whose windows all hold it.
            assert start <= totals.start and totals.end <= end, "totals outside the window"
            money, points, counted = totals.money_minor, totals.points, totals.breach_keys
        more: set[str] = set()
        for grant in self.customer_grants.get(customer_id, []):
            if start < grant.decided_at < end:
                money += grant.money_minor
                points += grant.points
                if grant.breach_key not in counted:
                    more.add(grant.breach_key)
        return CustomerUsage(money, len(counted) + len(more), points)

    def month_spend(self, merchant_id: str, now: datetime) -> tuple[int, int]:
        """Money and points the merchant granted in the budget month containing `now`."""
        return self.merchant_months.get((merchant_id, self._month_of(now)), (0, 0))

    def _month_of(self, at: datetime) -> datetime:
        """The start of `at`'s budget month. Every grant asks twice (its caps, then counting
        it) and a batch's incidents nearly all fall in one month, so the last month found
        answers when it holds `at`; only another month is worked out again."""
        month = self._month
        if month is None or at.tzinfo is None or not month[0] <= at < month[1]:
            month = self._month = budget_month(at)  # a naive `at` is refused there
        return month[0]

    def voucher_value(self, owed: CompensationSet) -> int:
        return sum(self.voucher_values.get(code, 0) for code in owed.vouchers)

    def _route(
        self,
        report: BreachReport,
        owed: CompensationSet,
        new_breach: bool,
        voucher_value: int | None = None,
    ) -> list[str]:
        """The caps granting `owed` now would break (empty: within every cap)."""
        limits = self.limits[report.merchant_id]
        usage = self.usage(report.customer_id, report.at)
        money, points = self.month_spend(report.merchant_id, report.at)
        if voucher_value is None:
            voucher_value = self.voucher_value(owed)
        decision = route_compensation(
            owed,
            limits,
            usage,
            money,
            new_breach=new_breach,
            voucher_value_minor=voucher_value,
            merchant_spent_points=points,
        )
        return [cap.value for cap in decision.caps_exceeded]

    def assess(
        self, report: BreachReport, policy: GuaranteePolicy, force_review: str | None = None
    ) -> Assessment:
        """Judge one report against the book as it stands; records what it owes.

        An incident first confirms the held parts of earlier claims its measurement reaches.
        A claim is paid at most up to the policy's self-reported maximum tier; each tier
        above is recorded as its own compensation, held for review (`self_reported`) until
        an incident reaching it or a person confirms it.

        Raises `RewardsRuleError` (from the domain) for a report that can never be judged;
        the book is unchanged then.
        """
        key = breach_key(report.order_id, report.promise)
        known = self.breaches.get(key)
        reached = policy.tiers_reached(report.measured)
        if not report.self_reported:
            self._confirm_held(report, key, reached, policy)
        trusted = trusted_measurement(policy, report.measured) if report.self_reported else None
        amount = report.order_amount_minor
        if known is None:
            owed = evaluate(policy, trusted or report.measured, amount)
        else:
            owed = top_up(policy, known.granted, trusted or report.measured, amount)
        before = known.granted.compensation if known is not None else CompensationSet()
        parts: list[tuple[CompensationSet, list[str]]] = []
        if not owed.is_empty and owed.tier > before.tier:
            parts.append((owed, []))
        running = before.plus(owed)
        for tier in range(max(running.tier, before.tier) + 1, reached + 1):
            step = owed_at_tier(policy, tier, amount).beyond(running)
            running = running.plus(step)
            if not step.is_empty:
                parts.append((step, [SELF_REPORTED]))
        if not parts:
            return Assessment(None, "nothing_owed", owed)
        self._record_breach(report, key, known, running.beyond(before))
        return self._write_parts(report, key, known is None, parts, force_review)

    def _write_parts(
        self,
        report: BreachReport,
        key: str,
        new_breach: bool,
        parts: list[tuple[CompensationSet, list[str]]],
        force_review: str | None,
    ) -> Assessment:
        """One compensation row per part, granted within the caps or held with its reasons."""
        last: dict[str, Any] = {}
        granted_id = None
        for owed, held_for in parts:
            value = self.voucher_value(owed)
            reasons = list(held_for)
            if not reasons:
                reasons = self._route(report, owed, new_breach, value)
            if force_review:
                reasons.append(force_review)
            status = "in_review" if reasons else "granted"
            last = _compensation_row(report, key, owed, new_breach, status, reasons)
            last["voucher_value_minor"] = value
            self.assessed.append(last)
            if SELF_REPORTED in reasons:  # a later incident of this batch may confirm it
                self.held.setdefault(key, []).append(last)
            if status == "granted":
                self.count_grant(last)
                granted_id = last["compensation_id"]
            new_breach = False
        held = any(row["status"] == "in_review" for row in self.assessed[-len(parts) :])
        status = "in_review" if held else "granted"
        total = parts[0][0]
        for owed, _ in parts[1:]:
            total = total.plus(owed)
        return Assessment(last["compensation_id"], status, total, granted_id)

    def _confirm_held(
        self, report: BreachReport, key: str, reached: int, policy: GuaranteePolicy
    ) -> None:
        """An incident's measurement confirms the held self-reported tiers it reaches.

        A held part was computed on the order when the claim came; it is paid on the order
        as the incident finds it, so a return in between lowers it (never raises it).
        """
        for row in self.held.get(key, []):
            if row["status"] != "in_review" or row["tier"] > reached:
                continue
            if SELF_REPORTED not in row["review_reasons"]:
                continue
            self._lower_to_record(row, key, policy, report.order_amount_minor)
            others = [r for r in row["review_reasons"] if r != SELF_REPORTED]
            owed = CompensationSet(
                row["tier"], frozenset(row["vouchers"]), row["points"], row["refund_minor"]
            )
            reasons = others or self._route(report, owed, row["new_breach"])
            row["review_reasons"] = reasons
            if not reasons:
                row.update(status="granted", decided_at=report.at, decided_by="policy:confirmed")
                self.count_grant(row)
            if not any(row is new for new in self.assessed):  # else inserted as it stands now
                self.confirmed.append(row)

    def _lower_to_record(
        self, row: dict[str, Any], key: str, policy: GuaranteePolicy, amount_minor: int
    ) -> None:
        """Cut a held part down to what its tier adds on `amount_minor` (the order now)."""
        tier = row["tier"]
        now = owed_at_tier(policy, tier, amount_minor).beyond(
            owed_at_tier(policy, tier - 1, amount_minor)
        )
        refund = min(row["refund_minor"], now.refund_minor)
        points = min(row["points"], now.points)
        cut_refund, cut_points = row["refund_minor"] - refund, row["points"] - points
        if not cut_refund and not cut_points:
            return
        row.update(refund_minor=refund, points=points)
        breach = self.breaches.get(key)
        if breach is not None:  # what the breach owes in all falls by the same
            breach.row["refund_minor"] -= cut_refund
            breach.row["points"] -= cut_points
            breach.changed = True

    def count_grant(self, values: dict[str, Any]) -> None:
        """Add a granted compensation to the usage later reports are capped against."""
        at: datetime = values["decided_at"]
        money = values["refund_minor"] + values.get("voucher_value_minor", 0)
        grant = _Granted(at, money, values["breach_key"], values["points"])
        self.customer_grants.setdefault(values["customer_id"], []).append(grant)
        month = (values["merchant_id"], self._month_of(at))
        spent, points = self.merchant_months.get(month, (0, 0))
        self.merchant_months[month] = (spent + money, points + values["points"])

    def drain(self) -> BookChanges:
        """What to store since the last drain (the book then counts it as stored)."""
        fresh = [b.row for b in self.breaches.values() if b.changed and not b.stored]
        moved = [b.row for b in self.breaches.values() if b.changed and b.stored]
        changes = BookChanges(fresh, moved, self.assessed, self.confirmed)
        for breach in self.breaches.values():
            breach.stored, breach.changed = True, False
        self.assessed, self.confirmed = [], []
        return changes

    def _record_breach(
        self, report: BreachReport, key: str, known: BreachRow | None, owed: CompensationSet
    ) -> None:
        """The worst measurement and everything owed so far (granted or in review)."""
        measured = {"worst_value": report.measured.value, "worst_unit": report.measured.unit.value}
        if known is None:
            row = {
                "breach_key": key,
                "customer_id": report.customer_id,
                "merchant_id": report.merchant_id,
                "order_id": report.order_id,
                "promise_kind": report.promise.value,
                "currency": report.currency,
                "order_amount_minor": report.order_amount_minor,
                **measured,
                **_owed_columns(owed),
                "first_seen_at": report.at,
                "updated_at": report.at,
            }
            self.breaches[key] = BreachRow(row, stored=False, changed=True)
            return
        total = known.granted.compensation.plus(owed)
        worst = known.granted.measured
        if report.measured.value * (report.measured.unit.seconds_each or 1) < worst.value * (
            worst.unit.seconds_each or 1
        ):
            measured = {"worst_value": worst.value, "worst_unit": worst.unit.value}
        # The breach keeps the amount it was first judged on: later top-ups use the record as
        # it is then (a return lowers it), so every payment is within the top tier of that.
        known.row.update(measured, **_owed_columns(total), updated_at=report.at)
        known.changed = True


def _owed_columns(owed: CompensationSet) -> dict[str, Any]:
    return {
        "tier": owed.tier,
        "vouchers": sorted(owed.vouchers),
        "points": owed.points,
        "refund_minor": owed.refund_minor,
    }


def _compensation_row(
    report: BreachReport,
    key: str,
    owed: CompensationSet,
    new_breach: bool,
    status: str,
    reasons: list[str],
) -> dict[str, Any]:
    granted = status == "granted"
    return {
        "compensation_id": compensation_id_for(key, owed.tier),
        "breach_key": key,
        "customer_id": report.customer_id,
        "merchant_id": report.merchant_id,
        "order_id": report.order_id,
        "promise_kind": report.promise.value,
        **_owed_columns(owed),
        "currency": report.currency,
        "new_breach": new_breach,
        "status": status,
        "trigger": report.trigger,
        "trigger_ref": report.trigger_ref,
        "review_reasons": reasons,
        "created_at": report.at,
        "decided_at": report.at if granted else None,
        "decided_by": "policy" if granted else None,
    }
