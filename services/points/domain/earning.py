"""Earning rules and the points an order earns.

Rules are data: an ``EarningRuleSet`` is one complete version of a programme's rules, valid
from ``effective_from`` until the next version starts. The version in force at the purchase's
``occurred_at`` applies, so replaying an old event gives the same points it gave the first
time. (Editing a version whose ``effective_from`` is already past breaks that promise; the
admin API should only add versions or edit future ones.)

How one order's points are computed, with a single floor at the very end:

    weighted amount = sum over lines of quantity x unit price x line weight
    points = floor(weighted amount in programme currency
                   x base rate (of the merchant)
                   x tier multiplier
                   x product of the campaigns running at the merchant at occurred_at)

* Line weight: a SKU rule wins over a category rule (it is more specific); with neither the
  weight is 1; weight 0 is an exclusion (gift cards earn nothing). Category and SKU multipliers
  therefore weight the amount BEFORE the order-level multipliers; since everything is exact
  (``Fraction``), the order of the products does not matter and only one floor is taken.
* Campaigns stack: two campaigns running together multiply (the issue's "product of the
  multipliers that apply"). Budget them accordingly.
* Minimum order amount: compared with the face value (unweighted) of the lines that are not
  excluded, in programme-currency minor units, so gift cards do not help reach it.
* Daily cap: the caller passes the points already accrued to the customer that day (the day
  is taken in the programme's time zone, see ``earning_day``); the order earns at most what is
  left under the cap.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from functools import cached_property, lru_cache
from types import MappingProxyType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.points.domain.assembly import assembler
from services.points.domain.currency import CurrencyRates, require_currency_code
from services.points.domain.errors import InvalidPurchaseError, InvalidRuleError
from services.points.domain.moments import require_aware
from services.points.domain.returns import EarningLine
from services.points.domain.tiers import Tier

DEFAULT_TIER_MULTIPLIERS: Mapping[Tier, Decimal] = MappingProxyType(
    {
        Tier.MEMBER: Decimal("1.0"),
        Tier.SILVER: Decimal("1.25"),
        Tier.GOLD: Decimal("1.5"),
        Tier.PLATINUM: Decimal("2.0"),
    }
)
BEGINNING_OF_TIME = datetime(1970, 1, 1, tzinfo=UTC)
UNWEIGHTED = Fraction(1)


class ItemScope(StrEnum):
    """What an item multiplier matches on."""

    CATEGORY = "category"
    SKU = "sku"


@dataclass(frozen=True)
class ItemMultiplier:
    """Weight of the lines of one category or SKU; ``multiplier`` 0 excludes them."""

    scope: ItemScope
    key: str
    multiplier: Decimal

    def __post_init__(self) -> None:
        _require_decimal(self.multiplier, f"multiplier of {self.scope} {self.key}", minimum=0)


def exclusion(scope: ItemScope, key: str) -> ItemMultiplier:
    """Lines of this category or SKU earn nothing (e.g. gift cards)."""
    return ItemMultiplier(scope=scope, key=key, multiplier=Decimal(0))


@dataclass(frozen=True)
class Campaign:
    """A time-bounded multiplier, at one merchant or (``merchant_id`` None) at every partner.

    Runs from ``starts_at`` included to ``ends_at`` excluded.
    """

    campaign_id: str
    multiplier: Decimal
    starts_at: datetime
    ends_at: datetime
    merchant_id: str | None = None

    def __post_init__(self) -> None:
        _require_decimal(self.multiplier, f"multiplier of campaign {self.campaign_id}", minimum=0)
        require_aware(self.starts_at, "campaign start")
        require_aware(self.ends_at, "campaign end")
        if self.ends_at <= self.starts_at:
            raise InvalidRuleError(f"campaign {self.campaign_id} ends before it starts")

    def applies_to(self, merchant_id: str, occurred_at: datetime) -> bool:
        """True when this campaign boosts a purchase at ``merchant_id`` at ``occurred_at``."""
        at_merchant = self.merchant_id is None or self.merchant_id == merchant_id
        return at_merchant and self.starts_at <= occurred_at < self.ends_at


@dataclass(frozen=True)
class EarningRuleSet:
    """One version of a programme's earning rules; defaults are the issue's defaults."""

    effective_from: datetime = BEGINNING_OF_TIME
    currency_rates: CurrencyRates = field(default_factory=CurrencyRates)
    base_rate: Decimal = Decimal(1)
    merchant_base_rates: Mapping[str, Decimal] = field(default_factory=dict)
    tier_multipliers: Mapping[Tier, Decimal] = field(
        default_factory=lambda: dict(DEFAULT_TIER_MULTIPLIERS)
    )
    item_multipliers: tuple[ItemMultiplier, ...] = ()
    campaigns: tuple[Campaign, ...] = ()
    minimum_order_minor: int = 0
    daily_cap_points: int | None = None
    return_window_days: int = 14
    merchant_return_window_days: Mapping[str, int] = field(default_factory=dict)
    validity_months: int = 12
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        require_aware(self.effective_from, "effective_from")
        _require_decimal(self.base_rate, "base rate", minimum=0)
        for merchant_id, rate in self.merchant_base_rates.items():
            _require_decimal(rate, f"base rate of merchant {merchant_id}", minimum=0)
        _validate_tier_multipliers(self.tier_multipliers)
        _validate_limits(self)
        _validate_item_keys(self.item_multipliers)
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise InvalidRuleError(f"unknown programme time zone {self.timezone!r}") from error

    def base_rate_for(self, merchant_id: str) -> Decimal:
        """Points per whole programme-currency unit at this merchant."""
        return self.merchant_base_rates.get(merchant_id, self.base_rate)

    def return_window_for(self, merchant_id: str) -> timedelta:
        """How long this merchant's points stay pending (its return window)."""
        days = self.merchant_return_window_days.get(merchant_id)
        if days is None:
            return self._default_return_window  # most merchants: built once per version
        return timedelta(days=days)

    @cached_property
    def _default_return_window(self) -> timedelta:
        return timedelta(days=self.return_window_days)

    @cached_property
    def _weights(self) -> tuple[Mapping[str, Fraction], Mapping[str, Fraction]]:
        """(by SKU, by category), built once per rule version: every order line asks."""
        by_scope: dict[ItemScope, dict[str, Fraction]] = {scope: {} for scope in ItemScope}
        for rule in self.item_multipliers:
            by_scope[rule.scope][rule.key] = Fraction(rule.multiplier)
        return by_scope[ItemScope.SKU], by_scope[ItemScope.CATEGORY]

    @cached_property
    def _order_factors(self) -> dict[tuple[str | None, Tier, str, tuple[Campaign, ...]], Fraction]:
        return {}

    def order_factor(
        self, merchant_id: str, tier: Tier, currency: str, campaigns: tuple[Campaign, ...]
    ) -> Fraction:
        """Everything an order's weighted minor units are multiplied by before the floor:
        1/10^exponent x currency rate x base rate x tier multiplier x the campaigns.

        Exact, and computed once per combination and rule version (the formula multiplies
        the same few Decimals for every purchase). The key names a merchant only when it has
        its own base rate, so the cache is bounded by the configuration, not the traffic.
        """
        own_rate = merchant_id if merchant_id in self.merchant_base_rates else None
        key = (own_rate, tier, currency, campaigns)
        factor = self._order_factors.get(key)
        if factor is None:
            factor = self.currency_rates.to_programme_units(1, currency)
            factor *= _exact(self.base_rate_for(merchant_id)) * _exact(self.tier_multipliers[tier])
            for campaign in campaigns:
                factor *= _exact(campaign.multiplier)
            self._order_factors[key] = factor
        return factor

    def line_weight(self, line: OrderLine) -> Fraction:
        """Weight of a line: its SKU rule, else its category rule, else 1 (0 means excluded)."""
        return self.weight_of(line.sku, line.category)

    def weight_of(self, sku: str, category: str | None) -> Fraction:
        """`line_weight` of a line with this SKU and category."""
        if not self.item_multipliers:
            return UNWEIGHTED
        by_sku, by_category = self._weights
        if sku in by_sku:
            return by_sku[sku]
        if category is not None and category in by_category:
            return by_category[category]
        return UNWEIGHTED


@dataclass(frozen=True, slots=True)
class OrderLine:
    """One line of a receipt, in the order's currency minor units."""

    sku: str
    quantity: int
    unit_price_minor: int
    category: str | None = None

    def __post_init__(self) -> None:
        if self.quantity <= 0:
            raise InvalidPurchaseError(f"line {self.sku} has quantity {self.quantity}")
        if self.unit_price_minor < 0:
            raise InvalidPurchaseError(f"line {self.sku} has a negative price")

    @property
    def amount_minor(self) -> int:
        """Quantity x unit price."""
        return self.quantity * self.unit_price_minor


@dataclass(frozen=True, slots=True)
class Purchase:
    """A completed order at a partner merchant, as the points rules need it."""

    order_id: str
    merchant_id: str
    occurred_at: datetime
    currency: str
    lines: tuple[OrderLine, ...]

    def __post_init__(self) -> None:
        require_aware(self.occurred_at, "purchase time")
        require_currency_code(self.currency)

    @property
    def amount_minor(self) -> int:
        """What the customer paid for the whole order (all lines), in order currency."""
        return sum(line.amount_minor for line in self.lines)


@dataclass(frozen=True, slots=True)
class EarnedPoints:
    """The points an order earns, with what went into them (kept on the ledger for audit)."""

    points: int
    points_before_cap: int
    tier_multiplier: Decimal
    campaign_ids: tuple[str, ...]
    below_minimum: bool
    capped: bool


_earned_points = assembler(EarnedPoints)  # every order builds one: see `assembly`


def rule_set_in_force(
    rule_sets: Iterable[EarningRuleSet],
    at: datetime,
    default: EarningRuleSet | None = None,
) -> EarningRuleSet:
    """The version with the latest ``effective_from`` not after ``at``.

    With no version yet in force, ``default`` applies (the built-in defaults if None).
    """
    require_aware(at, "purchase time")
    candidates = [rules for rules in rule_sets if rules.effective_from <= at]
    if not candidates:
        return default or DEFAULT_EARNING_RULES
    latest = max(rules.effective_from for rules in candidates)
    in_force = [rules for rules in candidates if rules.effective_from == latest]
    if len(in_force) > 1:
        raise InvalidRuleError(f"two rule versions take effect at {latest.isoformat()}")
    return in_force[0]


def earning_day(rules: EarningRuleSet, occurred_at: datetime) -> date:
    """Calendar day, in the programme's time zone, that a purchase counts toward the cap."""
    return require_aware(occurred_at, "purchase time").astimezone(ZoneInfo(rules.timezone)).date()


def points_for_order(
    purchase: Purchase, tier: Tier, rules: EarningRuleSet, earned_today: int = 0
) -> EarnedPoints:
    """Points earned by ``purchase`` for a customer of ``tier``, floored once per order.

    ``earned_today`` is what the customer already accrued on the same ``earning_day``; it only
    matters when the rules have a daily cap. Raises ``UnknownCurrencyError`` for a currency the
    programme has no rate for.
    """
    amounts = _amounts_by_weight(purchase, rules) if rules.item_multipliers else None
    order = (purchase.merchant_id, purchase.occurred_at, purchase.currency)
    return _earned(order, amounts, purchase.amount_minor, tier, rules, earned_today)


def points_for_lines(
    lines: Iterable[EarningLine],
    order: tuple[str, datetime, str],
    tier: Tier,
    rules: EarningRuleSet,
    earned_today: int = 0,
) -> EarnedPoints:
    """`points_for_order` of an order given as its lines as they earn, each with the weight
    ``rules`` give it (`EarningRuleSet.weight_of`); ``order`` is (merchant, time, currency).

    The accrual builds each line once, with its weight, and keeps it for later returns,
    instead of an `OrderLine` to earn with and an `EarningLine` to keep.
    """
    if not rules.item_multipliers:  # every line weighs 1: no amounts by weight to hash
        total = sum(line.quantity * line.unit_price_minor for line in lines)
        return _earned(order, None, total, tier, rules, earned_today)
    amounts: dict[Fraction, int] = {}
    for line in lines:
        amounts[line.weight] = amounts.get(line.weight, 0) + line.quantity * line.unit_price_minor
    return _earned(order, amounts, 0, tier, rules, earned_today)


def points_for_amount(
    total_minor: int,
    order: tuple[str, datetime, str],
    tier: Tier,
    rules: EarningRuleSet,
    earned_today: int = 0,
) -> EarnedPoints:
    """`points_for_lines` of lines adding up to ``total_minor``, under rules without item
    multipliers (every line weighs 1): the accrual has the total already."""
    if rules.item_multipliers:
        raise InvalidRuleError("item multipliers weigh each line: give the lines")
    return _earned(order, None, total_minor, tier, rules, earned_today)


def _earned(
    order: tuple[str, datetime, str],
    amounts: dict[Fraction, int] | None,
    total_minor: int,
    tier: Tier,
    rules: EarningRuleSet,
    earned_today: int,
) -> EarnedPoints:
    """The points of an order's amounts by line weight (None: every line weighs 1)."""
    merchant_id, occurred_at, currency = order
    campaigns = (
        tuple(c for c in rules.campaigns if c.applies_to(merchant_id, occurred_at))
        if rules.campaigns
        else ()
    )
    weighted_minor: int | Fraction
    if amounts is not None:
        face_minor = sum(amount for weight, amount in amounts.items() if weight > 0)
        # Unweighted amounts stay integers (exact, and no Fraction built for most baskets).
        weighted_minor = sum(
            amount if weight is UNWEIGHTED else weight * amount
            for weight, amount in amounts.items()
        )
    else:  # no item rule: every line weighs 1
        face_minor = weighted_minor = total_minor
    # Most versions have no minimum and no cap: then neither rule is called.
    below_minimum = rules.minimum_order_minor != 0 and _below_minimum(face_minor, currency, rules)
    factor = rules.order_factor(merchant_id, tier, currency, campaigns)
    uncapped = 0 if below_minimum else _floor_of_product(weighted_minor, factor)
    cap = rules.daily_cap_points
    points = uncapped if cap is None else _apply_daily_cap(uncapped, cap, earned_today)
    return _earned_points(  # EarnedPoints(points, points_before_cap, tier_multiplier, ...)
        points,
        uncapped,
        rules.tier_multipliers[tier],
        tuple(c.campaign_id for c in campaigns) if campaigns else (),
        below_minimum,
        points < uncapped,
    )


def _floor_of_product(weighted_minor: int | Fraction, factor: Fraction) -> int:
    """floor(weighted x factor) in integers: the same exact value, no Fraction built."""
    if isinstance(weighted_minor, int):
        return weighted_minor * factor.numerator // factor.denominator
    numerator = weighted_minor.numerator * factor.numerator
    return numerator // (weighted_minor.denominator * factor.denominator)


@lru_cache(maxsize=1024)
def _exact(multiplier: Decimal) -> Fraction:
    """The exact value of a rule's Decimal (converted once per value, not once per order)."""
    return Fraction(multiplier)


def _amounts_by_weight(purchase: Purchase, rules: EarningRuleSet) -> dict[Fraction, int]:
    # Lines sharing a weight are summed as integers first: exact, and far fewer Fraction
    # operations on the hot path (most baskets have a single weight).
    amounts: dict[Fraction, int] = {}
    for line in purchase.lines:
        weight = rules.line_weight(line)
        amounts[weight] = amounts.get(weight, 0) + line.amount_minor
    return amounts


def _below_minimum(face_minor: int, currency: str, rules: EarningRuleSet) -> bool:
    """The face value of the lines that are not excluded is below the order minimum."""
    if rules.minimum_order_minor == 0:
        return False
    rates = rules.currency_rates
    face_units = rates.to_programme_units(face_minor, currency)
    programme_exponent = rates.exponent(rates.programme_currency)
    return face_units * Fraction(10**programme_exponent) < rules.minimum_order_minor


def _apply_daily_cap(points: int, cap: int | None, earned_today: int) -> int:
    if cap is None:
        return points
    return max(min(points, cap - earned_today), 0)


def _require_decimal(value: Decimal, what: str, minimum: int) -> None:
    # Floats are refused outright: 0.1 as a float is not 1/10, and points must be exact.
    if not isinstance(value, Decimal) or not value.is_finite() or value < minimum:
        raise InvalidRuleError(f"{what} must be a Decimal >= {minimum}, got {value!r}")


def _validate_tier_multipliers(multipliers: Mapping[Tier, Decimal]) -> None:
    missing = set(Tier) - set(multipliers)
    if missing:
        raise InvalidRuleError(f"tier multipliers missing for {sorted(missing)}")
    for tier, multiplier in multipliers.items():
        _require_decimal(multiplier, f"multiplier of tier {tier}", minimum=0)


def _validate_limits(rules: EarningRuleSet) -> None:
    if rules.minimum_order_minor < 0:
        raise InvalidRuleError("minimum order amount must not be negative")
    if rules.daily_cap_points is not None and rules.daily_cap_points < 0:
        raise InvalidRuleError("daily earning cap must not be negative")
    windows = [rules.return_window_days, *rules.merchant_return_window_days.values()]
    if min(windows) < 0:
        raise InvalidRuleError("a return window must not be negative")
    if rules.validity_months < 1:
        raise InvalidRuleError("points must stay valid for at least one month")


def _validate_item_keys(multipliers: tuple[ItemMultiplier, ...]) -> None:
    keys = [(m.scope, m.key) for m in multipliers]
    if len(keys) != len(set(keys)):
        raise InvalidRuleError("a category or SKU has two multipliers in one rule version")


# Built last: constructing it runs the validators above.
DEFAULT_EARNING_RULES = EarningRuleSet()
