"""Balances and liability as of a moment, derived from lots.

Nothing here trusts the expiry job to have run: a lot whose expiry date has passed counts for
nothing, so the balance a partner app sees never includes points that are already gone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from services.points.domain.lots import Lot
from services.points.domain.moments import require_aware

EXPIRING_SOON_WINDOW = timedelta(days=30)


@dataclass(frozen=True)
class DatedPoints:
    """Points that change state at ``at`` (become available, or expire)."""

    at: datetime
    points: int


@dataclass(frozen=True)
class Balance:
    """A customer's points at one moment.

    ``available`` is net of ``debt``, so it is negative when a return reversed points the
    customer had already spent. ``expiring_soon`` counts points (pending or available) whose
    expiry falls within the window after ``now``.
    """

    available: int
    pending: int
    pending_releases: tuple[DatedPoints, ...]
    expiring_soon: int
    expiring_dates: tuple[DatedPoints, ...]
    debt: int

    @property
    def total(self) -> int:
        """Everything the customer holds, pending included, net of debt."""
        return self.available + self.pending


@dataclass(frozen=True)
class MerchantLiability:
    """Outstanding points a coalition partner's purchases created."""

    merchant_id: str | None
    available: int
    pending: int


def balance_at(
    lots: Sequence[Lot],
    now: datetime,
    debt: int = 0,
    expiring_within: timedelta = EXPIRING_SOON_WINDOW,
) -> Balance:
    """The balance at ``now``: available, pending with release dates, expiring soon."""
    require_aware(now, "now")
    live = [lot for lot in lots if lot.usable(now) > 0]
    pending = [lot for lot in live if lot.is_pending(now)]
    available = [lot for lot in live if lot.is_available(now)]
    expiring = [lot for lot in live if lot.expires_at <= now + expiring_within]
    releases = _group_by_date((lot.pending_until, lot.usable(now)) for lot in pending)
    expiring_dates = _group_by_date((lot.expires_at, lot.usable(now)) for lot in expiring)
    return Balance(
        available=sum(lot.usable(now) for lot in available) - debt,
        pending=sum(release.points for release in releases),
        pending_releases=releases,
        expiring_soon=sum(dated.points for dated in expiring_dates),
        expiring_dates=expiring_dates,
        debt=debt,
    )


def available_and_pending(lots: Iterable[Lot], now: datetime, debt: int = 0) -> tuple[int, int]:
    """``(available, pending)`` exactly as ``balance_at`` computes them, and nothing more.

    Every outgoing points event carries these two figures; the release and expiry dates
    ``balance_at`` also groups would be thrown away, and on the accrual hot path that
    grouping cost more than the rest of the snapshot. One pass, same rules per lot.
    """
    if now.tzinfo is not UTC:  # `UTC` is aware: no `utcoffset` call for the usual `now`
        require_aware(now, "now")
    available = pending = 0
    for lot in lots:
        if now >= lot.expires_at:
            continue  # expired: counts for nothing (Lot.usable)
        points = lot.remaining
        if points <= 0:
            continue
        if now < lot.pending_until:
            pending += points
        else:
            available += points
    return available - debt, pending


def liability_by_merchant(lots: Iterable[Lot], now: datetime) -> tuple[MerchantLiability, ...]:
    """Available and pending points outstanding per merchant (None: programme credits).

    A customer's debt is not attributed to a merchant here; report it separately.
    """
    require_aware(now, "now")
    totals: dict[str | None, tuple[int, int]] = {}
    for lot in lots:
        points = lot.usable(now)
        if points == 0:
            continue
        available, pending = totals.get(lot.merchant_id, (0, 0))
        if lot.is_pending(now):
            totals[lot.merchant_id] = (available, pending + points)
        else:
            totals[lot.merchant_id] = (available + points, pending)
    return tuple(
        MerchantLiability(merchant_id, available, pending)
        for merchant_id, (available, pending) in sorted(
            totals.items(), key=lambda item: (item[0] is None, item[0] or "")
        )
    )


def _group_by_date(dated: Iterable[tuple[datetime, int]]) -> tuple[DatedPoints, ...]:
    totals: dict[datetime, int] = {}
    for at, points in dated:
        totals[at] = totals.get(at, 0) + points
    return tuple(DatedPoints(at, points) for at, points in sorted(totals.items()))
