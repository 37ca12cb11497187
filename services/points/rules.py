"""Programme rules as stored data: versions of earning rules and tier thresholds.

A version is one row of `earning_rules`: a JSON snapshot of an `EarningRuleSet` and,
optionally, a `TierPolicy` (NULL means the default thresholds), valid from its
`effective_from` until the next version starts. The version in force at a purchase's
`occurred_at` applies, so replaying an old purchase gives the points it gave first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic import TypeAdapter
from sqlalchemy.ext.asyncio import AsyncConnection

from services.points.db import earning_rules
from services.points.domain.earning import DEFAULT_EARNING_RULES, EarningRuleSet, rule_set_in_force
from services.points.domain.tiers import TierPolicy

_EARNING = TypeAdapter(EarningRuleSet)
_TIERS = TypeAdapter(TierPolicy)
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


def rules_to_json(rules: ProgrammeRules) -> tuple[dict[str, Any], dict[str, Any]]:
    """The two JSON documents stored for a version (earning rules, tier policy)."""
    return (
        _EARNING.dump_python(rules.earning, mode="json"),
        _TIERS.dump_python(rules.tiers, mode="json"),
    )


def rules_from_json(earning: dict[str, Any], tiers: dict[str, Any] | None) -> ProgrammeRules:
    """A stored version back as rules (validated by the domain's own checks)."""
    policy = _TIERS.validate_python(tiers) if tiers is not None else DEFAULT_TIER_POLICY
    return ProgrammeRules(earning=_EARNING.validate_python(earning), tiers=policy)


async def load_rule_book(conn: AsyncConnection) -> RuleBook:
    """Every stored version, oldest first."""
    rows = await conn.execute(
        sa.select(earning_rules.c.rules, earning_rules.c.tier_policy).order_by(
            earning_rules.c.effective_from
        )
    )
    return RuleBook(tuple(rules_from_json(row.rules, row.tier_policy) for row in rows))


async def add_rule_version(conn: AsyncConnection, rules: ProgrammeRules, created_by: str) -> int:
    """Store a new version (its `effective_from` must be unique); returns its id."""
    earning, tiers = rules_to_json(rules)
    new_id = await conn.scalar(
        sa.insert(earning_rules)
        .values(
            effective_from=rules.earning.effective_from,
            rules=earning,
            tier_policy=tiers,
            created_by=created_by,
        )
        .returning(earning_rules.c.id)
    )
    return int(new_id or 0)
