"""Time helpers shared by the rewards rules.

The rules never read the wall clock: callers pass `now`. Every time must carry
its timezone, because a naive time compared with an aware one is either an
exception or, worse, a silently wrong answer across a daylight-saving change.
"""

from __future__ import annotations

from datetime import datetime

from services.rewards.domain.errors import NaiveDatetimeError


def require_aware(moment: datetime, what: str) -> datetime:
    """Return `moment` unchanged, or raise if it has no timezone."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise NaiveDatetimeError(f"{what} must carry a timezone, got the naive time {moment}")
    return moment
