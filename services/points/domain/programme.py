"""The programme's rules as versions in time: what decides points and tiers from a moment on.

A version holds an `EarningRuleSet` and a `TierPolicy`, valid from its `effective_from`
until the next version starts. The version in force at a purchase's `occurred_at` applies,
so replaying an old purchase gives the points it gave first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.points.domain.earning import DEFAULT_EARNING_RULES, EarningRuleSet, rule_set_in_force
from services.points.domain.tiers import TierPolicy

DEFAULT_TIER_POLICY = TierPolicy()


@dataclass(frozen=True)
class ProgrammeRules:
    """Everything that decides points and tiers from one moment on."""

    earning: EarningRuleSet = DEFAULT_EARNING_RULES
    tiers: TierPolicy = DEFAULT_TIER_POLICY


DEFAULT_PROGRAMME_RULES = ProgrammeRules()


@dataclass(frozen=True)
class RuleBook:
    """All stored versions; picks the one in force at a moment."""

    versions: tuple[ProgrammeRules, ...] = ()

    def in_force(self, at: datetime) -> ProgrammeRules:
        """The version whose `effective_from` is the latest not after `at` (else defaults)."""
        if not self.versions:
            return DEFAULT_PROGRAMME_RULES
        chosen = rule_set_in_force([v.earning for v in self.versions], at)
        for version in self.versions:
            if version.earning is chosen:
                return version
        return DEFAULT_PROGRAMME_RULES

    @property
    def longest_window_months(self) -> int:
        """How far back tier qualification may ever look, over every version."""
        windows = [v.tiers.window_months for v in (DEFAULT_PROGRAMME_RULES, *self.versions)]
        return max(windows)

    @property
    def has_daily_cap(self) -> bool:
        return any(v.earning.daily_cap_points is not None for v in self.versions)
