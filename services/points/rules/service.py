"""Rule versions as the admin API manages them, and the rule book each use case reads.

Only versions that start in the future may be added or edited. The rule in force at a
purchase's `occurred_at` decides its points, so changing the past would make a replay of
the topic give other balances than the first run. An edit keeps what it replaced, with
who edited and when: an auditor sees every change to the rules.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.points.domain.programme import ProgrammeRules, RuleBook
from services.points.rules.repository import RuleEdit, RuleRepository, StoredVersion
from services.points.uow import PointsUnitOfWork
from shared.errors import Conflict, NotFound, Unprocessable

_BOOK = "points.rule_book"


class RuleVersionNotFound(NotFound):
    code, title = "rule_version_not_found", "No such rule version"


class RuleVersionExists(Conflict):
    code, title = "rule_version_exists", "A rule version already starts at that moment"


class RuleVersionInForce(Conflict):
    code, title = "rule_version_in_force", "The rule version is already in force"


class EffectiveFromInPast(Unprocessable):
    code, title = "effective_from_in_past", "A rule version must start in the future"


async def rule_book(uow: PointsUnitOfWork) -> RuleBook:
    """The programme's rule versions, read once per unit of work (once per consumer batch)."""
    book = uow.cache.get(_BOOK)
    if not isinstance(book, RuleBook):
        book = await uow.rules.book()
        uow.cache[_BOOK] = book
    return book


async def list_versions(uow: PointsUnitOfWork) -> list[StoredVersion]:
    return await uow.rules.versions()


async def get_version(uow: PointsUnitOfWork, version_id: int, lock: bool = False) -> StoredVersion:
    stored = await uow.rules.get(version_id, lock)
    if stored is None:
        raise RuleVersionNotFound(f"no rule version {version_id}")
    return stored


async def add_version(
    uow: PointsUnitOfWork, rules: ProgrammeRules, created_by: str
) -> StoredVersion:
    """Store a new version starting in the future."""
    _require_future(rules, uow.now)
    await _refuse_taken(uow.rules, rules, None)
    try:
        return await uow.rules.add(rules, created_by)
    except IntegrityError as error:  # another admin won the race for that moment
        raise RuleVersionExists("a rule version already starts at that moment") from error


async def edit_version(
    uow: PointsUnitOfWork, version_id: int, rules: ProgrammeRules, edited_by: str
) -> StoredVersion:
    """Replace a version that has not started yet (and may not start in the past).

    The replaced content goes to the version's edit history, and the version records
    `edited_by` and the time as its last update.
    """
    now = uow.now
    stored = await get_version(uow, version_id, lock=True)
    if stored.rules.earning.effective_from <= now:
        raise RuleVersionInForce(
            f"rule version {version_id} has been in force since "
            f"{stored.rules.earning.effective_from.isoformat()}; add a new version instead"
        )
    _require_future(rules, now)
    await _refuse_taken(uow.rules, rules, version_id)
    try:
        return await uow.rules.replace(version_id, rules, edited_by, now)
    except IntegrityError as error:
        raise RuleVersionExists("a rule version already starts at that moment") from error


async def list_edits(uow: PointsUnitOfWork, version_id: int) -> list[RuleEdit]:
    """The edits of a version, oldest first; an unknown version is `RuleVersionNotFound`."""
    await get_version(uow, version_id)
    return await uow.rules.edits(version_id)


def _require_future(rules: ProgrammeRules, now: datetime) -> None:
    if rules.earning.effective_from <= now:
        raise EffectiveFromInPast(
            f"effective_from must be after {now.isoformat()}", field="effective_from"
        )


async def _refuse_taken(repo: RuleRepository, rules: ProgrammeRules, but: int | None) -> None:
    taken = await repo.starting_at(rules.earning.effective_from)
    if taken is not None and taken != but:
        raise RuleVersionExists(
            f"rule version {taken} already starts at {rules.earning.effective_from.isoformat()}",
            field="effective_from",
        )


class RuleBookCache:
    """The rule versions, re-read at most every `ttl` seconds (and at once after an edit)."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._book: RuleBook | None = None
        self._read_at = 0.0

    async def get(self, engine: AsyncEngine) -> RuleBook:
        if self._book is None or self.clock() - self._read_at >= self.ttl:
            async with engine.connect() as conn:
                self._book = await RuleRepository(conn).book()
            self._read_at = self.clock()
        return self._book

    def invalidate(self) -> None:
        self._book = None
