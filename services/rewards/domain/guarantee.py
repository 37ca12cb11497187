"""Satisfaction-guarantee policies and the compensation they owe (DOMAIN.md section 2).

A merchant promises something measurable (a dish within 10 minutes, check-in
within 3) and compensates automatically when it misses. Policies are data, so a
merchant changes its promise without a deploy.

How tiers accumulate (the documents say "over 15 minutes: *also* 20%"):

* Tiers are **cumulative**: a measurement over tier k earns every compensation
  line of tiers 1..k. Over 15 minutes the guest keeps the fruit plate of tier 1
  and also gets the 20% refund of tier 2.
* Within one line (the money refund, the points credit, one voucher reward
  code) the **highest tier reached sets the amount**; amounts of the same line
  are not added across tiers. "Over 20 minutes: double the order amount" pays
  2x the order in total, not 2x plus the 20% of tier 2. A policy that wants
  additive amounts writes the running total into the higher tier.

Exactly once per breach: one compensation per (order, promise). A later, worse
measurement of the same breach earns only the difference up to its tier
(`top_up`), so the customer is never paid twice for one miss.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from itertools import pairwise

from services.rewards.domain.errors import InvalidRuleError, MeasurementMismatchError
from services.rewards.domain.keys import idempotency_key, require_identifier

BASIS_POINTS_PER_WHOLE = 10_000
DEFAULT_CLAIM_WINDOW = timedelta(days=7)
DEFAULT_SELF_REPORTED_MAX_TIER = 1


class PromiseKind(StrEnum):
    """The service promise a policy guarantees."""

    DISH_WAIT_TIME = "dish_wait_time"
    CHECK_IN_TIME = "check_in_time"
    CHECK_OUT_TIME = "check_out_time"
    SERVICE_CALL_RESPONSE = "service_call_response"
    DELIVERY_LATENESS = "delivery_lateness"
    ROOM_NOT_AS_BOOKED = "room_not_as_booked"
    EQUIPMENT_FAILURE = "equipment_failure"


class MeasureUnit(StrEnum):
    """Unit of a measured value: a duration, or a yes/no breach (room not as booked)."""

    MINUTES = "minutes"
    SECONDS = "seconds"
    BREACH = "breach"

    @property
    def seconds_each(self) -> int | None:
        """Seconds in one unit; None for a yes/no breach, which is not a duration."""
        return {MeasureUnit.MINUTES: 60, MeasureUnit.SECONDS: 1}.get(self)


@dataclass(frozen=True)
class Measurement:
    """What an operations system or a claim reports: 12 minutes, 700 seconds, a breach."""

    value: int
    unit: MeasureUnit

    def __post_init__(self) -> None:
        if isinstance(self.value, bool) or self.value < 0:
            raise InvalidRuleError(f"a measurement must be a whole number >= 0, got {self.value}")
        if self.unit is MeasureUnit.BREACH and self.value not in (0, 1):
            raise InvalidRuleError("a yes/no breach is measured as 1 (breached) or 0 (kept)")

    @classmethod
    def minutes(cls, value: int) -> Measurement:
        return cls(value, MeasureUnit.MINUTES)

    @classmethod
    def seconds(cls, value: int) -> Measurement:
        return cls(value, MeasureUnit.SECONDS)

    @classmethod
    def breach(cls, breached: bool) -> Measurement:
        return cls(1 if breached else 0, MeasureUnit.BREACH)


def _comparable(value: int, unit: MeasureUnit, policy_unit: MeasureUnit) -> int:
    """Value on a common scale (seconds for durations), refusing duration-vs-breach."""
    if (unit is MeasureUnit.BREACH) != (policy_unit is MeasureUnit.BREACH):
        raise MeasurementMismatchError(
            f"a measurement in {unit} cannot be judged against a promise measured in {policy_unit}"
        )
    return value * (unit.seconds_each or 1)


@dataclass(frozen=True)
class VoucherCompensation:
    """A voucher for a reward, e.g. reward code "fruit-plate"."""

    reward_code: str

    def __post_init__(self) -> None:
        require_identifier(self.reward_code, "a voucher compensation's reward code")


@dataclass(frozen=True)
class PointsCompensation:
    """A points credit, sent to the points service as an event."""

    points: int

    def __post_init__(self) -> None:
        if self.points <= 0:
            raise InvalidRuleError(f"a points compensation must be >= 1 point, got {self.points}")


@dataclass(frozen=True)
class RefundCompensation:
    """A money refund instruction for the point of sale, as a share of the order amount.

    Basis points of the order: 2,000 is 20% of the order, 20,000 is double the order.
    """

    basis_points_of_order: int

    def __post_init__(self) -> None:
        if self.basis_points_of_order <= 0:
            raise InvalidRuleError("a refund must be a positive share of the order amount")

    @classmethod
    def share_of_order(cls, basis_points: int) -> RefundCompensation:
        return cls(basis_points)

    @classmethod
    def multiple_of_order(cls, times: int) -> RefundCompensation:
        return cls(times * BASIS_POINTS_PER_WHOLE)

    def amount_minor(self, order_amount_minor: int) -> int:
        """Refund in minor units, rounded half up (the customer gets the half cent)."""
        numerator = order_amount_minor * self.basis_points_of_order
        return (numerator + BASIS_POINTS_PER_WHOLE // 2) // BASIS_POINTS_PER_WHOLE


Compensation = VoucherCompensation | PointsCompensation | RefundCompensation


@dataclass(frozen=True)
class GuaranteeTier:
    """Compensation owed once the measured value is strictly *over* `over` (policy unit)."""

    over: int
    compensations: tuple[Compensation, ...]

    def __post_init__(self) -> None:
        if self.over < 0:
            raise InvalidRuleError(f"a tier threshold must be >= 0, got {self.over}")
        if not self.compensations:
            raise InvalidRuleError(f"the tier over {self.over} compensates nothing")
        kinds = [type(c) for c in self.compensations if not isinstance(c, VoucherCompensation)]
        if len(kinds) != len(set(kinds)):
            raise InvalidRuleError(f"the tier over {self.over} lists a money or points line twice")


@dataclass(frozen=True)
class GuaranteePolicy:
    """One merchant's promise: what is measured, in which unit, and its escalating tiers."""

    merchant_id: str
    promise: PromiseKind
    unit: MeasureUnit
    tiers: tuple[GuaranteeTier, ...]
    claim_window: timedelta = DEFAULT_CLAIM_WINDOW
    # The highest tier a customer's own report (a claim) reaches without an incident or a
    # person confirming it; tiers above wait for that confirmation.
    self_reported_max_tier: int = DEFAULT_SELF_REPORTED_MAX_TIER

    def __post_init__(self) -> None:
        require_identifier(self.merchant_id, "a guarantee policy's merchant id")
        if not self.tiers:
            raise InvalidRuleError(f"the {self.promise} policy has no tiers")
        thresholds = [tier.over for tier in self.tiers]
        if any(low >= high for low, high in pairwise(thresholds)):
            raise InvalidRuleError(f"the {self.promise} tiers must escalate: {thresholds}")
        if self.unit is MeasureUnit.BREACH and thresholds != [0]:
            raise InvalidRuleError("a yes/no promise has exactly one tier, over 0")
        if self.claim_window <= timedelta(0):
            raise InvalidRuleError("the claim window must be longer than zero")
        if isinstance(self.self_reported_max_tier, bool) or self.self_reported_max_tier < 0:
            raise InvalidRuleError("the self-reported maximum tier must be >= 0")

    def tiers_reached(self, measured: Measurement) -> int:
        """How many tiers the measurement is over (0: the promise was kept)."""
        value = _comparable(measured.value, measured.unit, self.unit)
        return sum(1 for t in self.tiers if value > _comparable(t.over, self.unit, self.unit))


@dataclass(frozen=True)
class CompensationSet:
    """What a breach earns (or what a top-up adds): vouchers, points and a money refund."""

    tier: int = 0
    vouchers: frozenset[str] = field(default_factory=frozenset)
    points: int = 0
    refund_minor: int = 0

    @property
    def is_empty(self) -> bool:
        """True when nothing is owed: the promise was kept or was already compensated."""
        return not self.vouchers and self.points == 0 and self.refund_minor == 0

    def beyond(self, granted: CompensationSet) -> CompensationSet:
        """The part of this set not yet covered by `granted` (never negative)."""
        return CompensationSet(
            tier=self.tier,
            vouchers=self.vouchers - granted.vouchers,
            points=max(0, self.points - granted.points),
            refund_minor=max(0, self.refund_minor - granted.refund_minor),
        )

    def plus(self, more: CompensationSet) -> CompensationSet:
        """Everything granted after `more` is paid on top of this set."""
        return CompensationSet(
            tier=max(self.tier, more.tier),
            vouchers=self.vouchers | more.vouchers,
            points=self.points + more.points,
            refund_minor=self.refund_minor + more.refund_minor,
        )


def _owed_by_tiers(tiers: Iterable[GuaranteeTier], order_amount_minor: int) -> CompensationSet:
    """Cumulative lines of the reached tiers; the highest tier sets each line's amount."""
    vouchers: set[str] = set()
    points = refund = reached = 0
    for tier in tiers:
        reached += 1
        for line in tier.compensations:
            if isinstance(line, VoucherCompensation):
                vouchers.add(line.reward_code)
            elif isinstance(line, PointsCompensation):
                points = line.points
            else:
                refund = line.amount_minor(order_amount_minor)
    return CompensationSet(reached, frozenset(vouchers), points, refund)


def evaluate(
    policy: GuaranteePolicy, measured: Measurement, order_amount_minor: int
) -> CompensationSet:
    """Everything a breach of `policy` measured at `measured` earns on this order."""
    if isinstance(order_amount_minor, bool) or order_amount_minor < 0:
        raise InvalidRuleError(
            f"an order amount must be >= 0 minor units, got {order_amount_minor}"
        )
    reached = policy.tiers_reached(measured)
    return _owed_by_tiers(policy.tiers[:reached], order_amount_minor)


def owed_at_tier(policy: GuaranteePolicy, tier: int, order_amount_minor: int) -> CompensationSet:
    """Everything a breach reaching exactly `tier` tiers earns on this order."""
    return _owed_by_tiers(policy.tiers[: max(0, tier)], order_amount_minor)


def trusted_measurement(policy: GuaranteePolicy, measured: Measurement) -> Measurement:
    """A customer's own report, cut down to the policy's self-reported maximum tier.

    Tier k+1 starts strictly over its threshold, so the threshold itself reaches exactly
    tier k: a 25-minute claim against tiers over 10/15/20 with a maximum of 1 is judged as
    15 minutes. A report within the maximum is returned unchanged.
    """
    limit = policy.self_reported_max_tier
    if policy.tiers_reached(measured) <= limit:
        return measured
    if limit == 0:
        return Measurement(policy.tiers[0].over, policy.unit)
    return Measurement(policy.tiers[limit].over, policy.unit)


@dataclass(frozen=True)
class GrantedCompensation:
    """What one breach (order, promise) has earned so far, and the worst measurement seen."""

    measured: Measurement
    compensation: CompensationSet


def top_up(
    policy: GuaranteePolicy,
    granted: GrantedCompensation,
    measured: Measurement,
    order_amount_minor: int,
) -> CompensationSet:
    """Only what a worse measurement adds to what this breach already earned.

    A same-or-better measurement adds nothing, and lines already paid are never
    paid again, so any sequence of incidents pays at most what the worst one earns.
    """
    before = _comparable(granted.measured.value, granted.measured.unit, policy.unit)
    after = _comparable(measured.value, measured.unit, policy.unit)
    if after <= before:
        return CompensationSet(tier=granted.compensation.tier)
    owed = evaluate(policy, measured, order_amount_minor)
    return owed.beyond(granted.compensation)


def breach_key(order_id: str, promise: PromiseKind) -> str:
    """Identity of one breach: one compensation per (order, promise)."""
    require_identifier(order_id, "the order id of a breach")
    return idempotency_key("guarantee", order_id, promise.value)


def tier_payment_key(order_id: str, promise: PromiseKind, tier: int) -> str:
    """Idempotency key of the payment that brings a breach up to `tier`; unique per tier."""
    return idempotency_key("guarantee-payment", breach_key(order_id, promise), tier)


def restaurant_dish_wait_policy(merchant_id: str) -> GuaranteePolicy:
    """The seeded example from the source documents (a hotel restaurant's time limits)."""
    return GuaranteePolicy(
        merchant_id=merchant_id,
        promise=PromiseKind.DISH_WAIT_TIME,
        unit=MeasureUnit.MINUTES,
        tiers=(
            GuaranteeTier(10, (VoucherCompensation("fruit-plate"),)),
            GuaranteeTier(15, (RefundCompensation.share_of_order(2_000),)),
            GuaranteeTier(20, (RefundCompensation.multiple_of_order(2),)),
        ),
    )
