"""Stored rule versions (`earning_rules`) and their edit history (`earning_rule_edits`).

A version is one row: a JSON snapshot of an `EarningRuleSet` and, optionally, a
`TierPolicy` (NULL means the default thresholds). Repositories never commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic import TypeAdapter
from sqlalchemy.ext.asyncio import AsyncConnection

from services.points.db import earning_rule_edits, earning_rules
from services.points.domain.earning import EarningRuleSet
from services.points.domain.programme import DEFAULT_TIER_POLICY, ProgrammeRules, RuleBook
from services.points.domain.tiers import TierPolicy

_EARNING = TypeAdapter(EarningRuleSet)
_TIERS = TypeAdapter(TierPolicy)


@dataclass(frozen=True)
class StoredVersion:
    id: int
    rules: ProgrammeRules
    created_by: str
    recorded_at: datetime
    updated_by: str | None
    updated_at: datetime | None


@dataclass(frozen=True)
class RuleEdit:
    """One edit of a version: the rules it replaced, who edited them and when."""

    version_id: int
    replaced: ProgrammeRules
    edited_by: str
    edited_at: datetime


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


class RuleRepository:
    """Rule versions: the whole book, one version, adding and replacing, edit history."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def book(self) -> RuleBook:
        """Every stored version, oldest first."""
        rows = await self.conn.execute(
            sa.select(earning_rules.c.rules, earning_rules.c.tier_policy).order_by(
                earning_rules.c.effective_from
            )
        )
        return RuleBook(tuple(rules_from_json(row.rules, row.tier_policy) for row in rows))

    async def versions(self) -> list[StoredVersion]:
        rows = await self.conn.execute(
            sa.select(earning_rules).order_by(earning_rules.c.effective_from)
        )
        return [_stored(row) for row in rows]

    async def get(self, version_id: int, lock: bool = False) -> StoredVersion | None:
        query = sa.select(earning_rules).where(earning_rules.c.id == version_id)
        row = (await self.conn.execute(query.with_for_update() if lock else query)).first()
        return None if row is None else _stored(row)

    async def starting_at(self, effective_from: datetime) -> int | None:
        """The id of the version starting at exactly that moment, if any."""
        query = sa.select(earning_rules.c.id).where(
            earning_rules.c.effective_from == effective_from
        )
        found: int | None = await self.conn.scalar(query)
        return found

    async def add(self, rules: ProgrammeRules, created_by: str) -> StoredVersion:
        """Store a new version (its `effective_from` must be unique: IntegrityError if not)."""
        earning, tiers = rules_to_json(rules)
        values = {
            "effective_from": rules.earning.effective_from,
            "rules": earning,
            "tier_policy": tiers,
            "created_by": created_by,
        }
        insert = sa.insert(earning_rules).values(**values).returning(earning_rules)
        return _stored((await self.conn.execute(insert)).one())

    async def replace(
        self, version_id: int, rules: ProgrammeRules, edited_by: str, now: datetime
    ) -> StoredVersion:
        """Keep the version's content in its edit history, then store `rules` in its place."""
        await self._keep_replaced(version_id, edited_by, now)
        earning, tiers = rules_to_json(rules)
        values = {
            "effective_from": rules.earning.effective_from,
            "rules": earning,
            "tier_policy": tiers,
            "updated_by": edited_by,
            "updated_at": now,
        }
        update = (
            sa.update(earning_rules)
            .where(earning_rules.c.id == version_id)
            .values(**values)
            .returning(earning_rules)
        )
        return _stored((await self.conn.execute(update)).one())

    async def _keep_replaced(self, version_id: int, edited_by: str, now: datetime) -> None:
        # Copied as stored (not re-serialised), so the history shows exactly what was replaced.
        current = sa.select(
            earning_rules.c.id,
            earning_rules.c.effective_from,
            earning_rules.c.rules,
            earning_rules.c.tier_policy,
            sa.literal(edited_by, sa.Text),
            sa.literal(now, sa.DateTime(timezone=True)),
        ).where(earning_rules.c.id == version_id)
        columns = ["version_id", "effective_from", "rules", "tier_policy", "edited_by", "edited_at"]
        await self.conn.execute(sa.insert(earning_rule_edits).from_select(columns, current))

    async def edits(self, version_id: int) -> list[RuleEdit]:
        """The edits of a version, oldest first."""
        rows = await self.conn.execute(
            sa.select(earning_rule_edits)
            .where(earning_rule_edits.c.version_id == version_id)
            .order_by(earning_rule_edits.c.id)
        )
        return [
            RuleEdit(
                row.version_id,
                rules_from_json(row.rules, row.tier_policy),
                row.edited_by,
                row.edited_at,
            )
            for row in rows
        ]


def _stored(row: Any) -> StoredVersion:
    return StoredVersion(
        row.id,
        rules_from_json(row.rules, row.tier_policy),
        row.created_by,
        row.recorded_at,
        row.updated_by,
        row.updated_at,
    )
