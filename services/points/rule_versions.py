"""Stored rule versions as the admin API manages them: list, read, add, edit future ones.

Only versions that start in the future may be added or edited. The rule in force at a
purchase's `occurred_at` decides its points, so changing the past would make a replay of
the topic give other balances than the first run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from services.points.db import earning_rules
from services.points.rules import ProgrammeRules, rules_from_json, rules_to_json
from shared.errors import Conflict, NotFound, Unprocessable


class RuleVersionNotFound(NotFound):
    code, title = "rule_version_not_found", "No such rule version"


class RuleVersionExists(Conflict):
    code, title = "rule_version_exists", "A rule version already starts at that moment"


class RuleVersionInForce(Conflict):
    code, title = "rule_version_in_force", "The rule version is already in force"


class EffectiveFromInPast(Unprocessable):
    code, title = "effective_from_in_past", "A rule version must start in the future"


@dataclass(frozen=True)
class StoredVersion:
    id: int
    rules: ProgrammeRules
    created_by: str
    recorded_at: datetime


def _stored(row: Any) -> StoredVersion:
    return StoredVersion(
        row.id, rules_from_json(row.rules, row.tier_policy), row.created_by, row.recorded_at
    )


async def list_versions(conn: AsyncConnection) -> list[StoredVersion]:
    rows = await conn.execute(sa.select(earning_rules).order_by(earning_rules.c.effective_from))
    return [_stored(row) for row in rows]


async def get_version(conn: AsyncConnection, version_id: int, lock: bool = False) -> StoredVersion:
    query = sa.select(earning_rules).where(earning_rules.c.id == version_id)
    row = (await conn.execute(query.with_for_update() if lock else query)).first()
    if row is None:
        raise RuleVersionNotFound(f"no rule version {version_id}")
    return _stored(row)


def _require_future(rules: ProgrammeRules, now: datetime) -> None:
    if rules.earning.effective_from <= now:
        raise EffectiveFromInPast(
            f"effective_from must be after {now.isoformat()}", field="effective_from"
        )


async def _refuse_taken(conn: AsyncConnection, rules: ProgrammeRules, but: int | None) -> None:
    query = sa.select(earning_rules.c.id).where(
        earning_rules.c.effective_from == rules.earning.effective_from
    )
    taken = await conn.scalar(query)
    if taken is not None and taken != but:
        raise RuleVersionExists(
            f"rule version {taken} already starts at {rules.earning.effective_from.isoformat()}",
            field="effective_from",
        )


async def add_version(
    conn: AsyncConnection, rules: ProgrammeRules, created_by: str, now: datetime
) -> StoredVersion:
    """Store a new version starting in the future."""
    _require_future(rules, now)
    await _refuse_taken(conn, rules, None)
    earning, tiers = rules_to_json(rules)
    values = {
        "effective_from": rules.earning.effective_from,
        "rules": earning,
        "tier_policy": tiers,
        "created_by": created_by,
    }
    try:
        row = (
            await conn.execute(sa.insert(earning_rules).values(**values).returning(earning_rules))
        ).one()
    except IntegrityError as error:  # another admin won the race for that moment
        raise RuleVersionExists("a rule version already starts at that moment") from error
    return _stored(row)


async def edit_version(
    conn: AsyncConnection, version_id: int, rules: ProgrammeRules, now: datetime
) -> StoredVersion:
    """Replace a version that has not started yet (and may not start in the past)."""
    stored = await get_version(conn, version_id, lock=True)
    if stored.rules.earning.effective_from <= now:
        raise RuleVersionInForce(
            f"rule version {version_id} has been in force since "
            f"{stored.rules.earning.effective_from.isoformat()}; add a new version instead"
        )
    _require_future(rules, now)
    await _refuse_taken(conn, rules, version_id)
    earning, tiers = rules_to_json(rules)
    try:
        row = (
            await conn.execute(
                sa.update(earning_rules)
                .where(earning_rules.c.id == version_id)
                .values(
                    effective_from=rules.earning.effective_from, rules=earning, tier_policy=tiers
                )
                .returning(earning_rules)
            )
        ).one()
    except IntegrityError as error:
        raise RuleVersionExists("a rule version already starts at that moment") from error
    return _stored(row)
