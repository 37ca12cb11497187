"""Stored rule versions as the admin API manages them: list, read, add, edit future ones.

Only versions that start in the future may be added or edited. The rule in force at a
purchase's `occurred_at` decides its points, so changing the past would make a replay of
the topic give other balances than the first run.

An edit keeps what it replaced (`earning_rule_edits`, append-only) with who edited and
when, and the version records its last editor: an auditor sees every change to the rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from services.points.db import earning_rule_edits, earning_rules
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
    updated_by: str | None
    updated_at: datetime | None


@dataclass(frozen=True)
class RuleEdit:
    """One edit of a version: the rules it replaced, who edited them and when."""

    version_id: int
    replaced: ProgrammeRules
    edited_by: str
    edited_at: datetime


def _stored(row: Any) -> StoredVersion:
    return StoredVersion(
        row.id,
        rules_from_json(row.rules, row.tier_policy),
        row.created_by,
        row.recorded_at,
        row.updated_by,
        row.updated_at,
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


async def _keep_replaced(
    conn: AsyncConnection, version_id: int, edited_by: str, now: datetime
) -> None:
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
    await conn.execute(sa.insert(earning_rule_edits).from_select(columns, current))


async def edit_version(
    conn: AsyncConnection, version_id: int, rules: ProgrammeRules, now: datetime, edited_by: str
) -> StoredVersion:
    """Replace a version that has not started yet (and may not start in the past).

    The replaced content goes to the version's edit history, and the version records
    `edited_by` and `now` as its last update, in the caller's transaction.
    """
    stored = await get_version(conn, version_id, lock=True)
    if stored.rules.earning.effective_from <= now:
        raise RuleVersionInForce(
            f"rule version {version_id} has been in force since "
            f"{stored.rules.earning.effective_from.isoformat()}; add a new version instead"
        )
    _require_future(rules, now)
    await _refuse_taken(conn, rules, version_id)
    await _keep_replaced(conn, version_id, edited_by, now)
    earning, tiers = rules_to_json(rules)
    values = {
        "effective_from": rules.earning.effective_from,
        "rules": earning,
        "tier_policy": tiers,
        "updated_by": edited_by,
        "updated_at": now,
    }
    try:
        row = (
            await conn.execute(
                sa.update(earning_rules)
                .where(earning_rules.c.id == version_id)
                .values(**values)
                .returning(earning_rules)
            )
        ).one()
    except IntegrityError as error:
        raise RuleVersionExists("a rule version already starts at that moment") from error
    return _stored(row)


async def list_edits(conn: AsyncConnection, version_id: int) -> list[RuleEdit]:
    """The edits of a version, oldest first; an unknown version is `RuleVersionNotFound`."""
    await get_version(conn, version_id)
    rows = await conn.execute(
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
