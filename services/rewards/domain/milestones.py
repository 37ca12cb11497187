"""Milestone rewards: rules as data that fire when a customer's projection moves.

Two kinds of rule: every N lifetime points (every 10,000 -> a free-night
voucher), and reaching a tier (reaching Gold -> a welcome perk). The service feeds
the projection with settled points only (orders whose return window has ended) and
with the tier moves the points service reports, so a purchase returned within its
window never reaches a milestone.

Exactly once per customer per milestone, even on replay: each firing carries an
idempotency key (customer, rule, nth occurrence). The nth occurrence of an
every-N rule is the nth multiple of N, so re-crossing a threshold after points
were reversed produces the same key, which the database already holds. A tier
rule has a single occurrence, so dropping below Gold and reaching it again does
not pay the welcome perk twice. A jump over several thresholds fires each one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from services.rewards.domain.errors import InvalidRuleError
from services.rewards.domain.grants import Grant
from services.rewards.domain.keys import idempotency_key, require_identifier


@dataclass(frozen=True)
class LoyaltyProjection:
    """This service's view of a customer, built from `loyalty.points` events."""

    lifetime_points: int
    tier: str


@dataclass(frozen=True)
class TierLadder:
    """Tier names from lowest to highest, e.g. ("member", "silver", "gold", "platinum")."""

    tiers: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.tiers or len(set(self.tiers)) != len(self.tiers):
            raise InvalidRuleError(f"a tier ladder needs distinct tiers, got {self.tiers}")

    def rank(self, tier: str) -> int:
        """Position of `tier` on the ladder (0 = lowest)."""
        if tier not in self.tiers:
            raise InvalidRuleError(f"tier {tier!r} is not on the ladder {self.tiers}")
        return self.tiers.index(tier)


@dataclass(frozen=True)
class EveryLifetimePoints:
    """Fires at every multiple of `every` lifetime points."""

    rule_key: str
    every: int
    grant: Grant

    def __post_init__(self) -> None:
        require_identifier(self.rule_key, "a milestone rule key")
        if self.every <= 0:
            raise InvalidRuleError(f"rule {self.rule_key}: 'every' must be >= 1 point")


@dataclass(frozen=True)
class TierReached:
    """Fires once when the customer first reaches `tier` or any tier above it."""

    rule_key: str
    tier: str
    grant: Grant

    def __post_init__(self) -> None:
        require_identifier(self.rule_key, "a milestone rule key")


MilestoneRule = EveryLifetimePoints | TierReached


@dataclass(frozen=True)
class MilestoneRulebook:
    """The active milestone rules and the tier ladder they refer to."""

    ladder: TierLadder
    rules: tuple[MilestoneRule, ...]

    def __post_init__(self) -> None:
        keys = [rule.rule_key for rule in self.rules]
        if len(keys) != len(set(keys)):
            raise InvalidRuleError(f"milestone rule keys must be unique, got {keys}")
        for rule in self.rules:
            if isinstance(rule, TierReached):
                self.ladder.rank(rule.tier)


@dataclass(frozen=True)
class MilestoneReached:
    """One firing of a rule for a customer; `idempotency_key` makes it happen once."""

    customer_id: str
    rule_key: str
    occurrence: int
    grant: Grant

    @property
    def idempotency_key(self) -> str:
        return idempotency_key("milestone", self.customer_id, self.rule_key, self.occurrence)


def _points_occurrences(rule: EveryLifetimePoints, before: int, after: int) -> range:
    """Multiples of `rule.every` crossed going from `before` to `after` (1-based)."""
    return range(max(before, 0) // rule.every + 1, max(after, 0) // rule.every + 1)


def _firings(
    rule: MilestoneRule, ladder: TierLadder, previous: LoyaltyProjection, current: LoyaltyProjection
) -> Iterator[int]:
    if isinstance(rule, EveryLifetimePoints):
        yield from _points_occurrences(rule, previous.lifetime_points, current.lifetime_points)
        return
    target = ladder.rank(rule.tier)
    if ladder.rank(previous.tier) < target <= ladder.rank(current.tier):
        yield 1


def milestones_reached(
    customer_id: str,
    rulebook: MilestoneRulebook,
    previous: LoyaltyProjection | None,
    current: LoyaltyProjection,
) -> tuple[MilestoneReached, ...]:
    """Every milestone that fires as the projection moves from `previous` to `current`.

    `previous` is None for a customer seen for the first time (no points, lowest
    tier). Points going down fire nothing.
    """
    require_identifier(customer_id, "the customer id of a milestone")
    before = previous or LoyaltyProjection(0, rulebook.ladder.tiers[0])
    return tuple(
        MilestoneReached(customer_id, rule.rule_key, occurrence, rule.grant)
        for rule in rulebook.rules
        for occurrence in _firings(rule, rulebook.ladder, before, current)
    )
