"""What the alerts service remembers about each customer's buying, in constant space.

A lapse warning has to know each customer's own rhythm (the weekly shopper is lapsing after
three missed weeks, long before a fixed 113-day window). Storing every purchase would make the
state grow without bound, so the summary keeps running aggregates only: counts, spend, first and
last purchase, and the mean and spread of the gap between visits, updated with Welford's
algorithm.

Rules decided here (documented because they change what the warnings see):

* Shopping visits, not receipts, set the rhythm. A purchase within `SAME_VISIT_WINDOW` of the
  neighbouring purchase (the shopper who comes back for the milk they forgot) counts as a
  purchase and as spend, but not as a new visit; otherwise a weekly shopper with two receipts
  every Saturday would look like someone who buys every 3.5 days and be flagged too early.
* Out-of-order purchases (events that arrive after later ones). Welford's statistics describe a
  multiset of gaps, so the order in which gaps are added does not matter, but a gap can only be
  added if it is known to be a gap between consecutive visits:
    - after the last purchase: the normal case, adds the gap (new - last);
    - before the first purchase: adds the gap (first - new), still exact;
    - between first and last: it splits one gap of unknown length into two (or joins two
      visits into one), which cannot be done from aggregates. The service keeps every
      purchase's time (`purchase_history`) and recomputes the visits and gaps from it with
      `visit_statistics`, so the summary is exact for any arrival order. `apply_purchase`
      alone (no history) only counts the purchase and spend, never a new visit, and
      `late_purchase_count` records how often this happened.
* Returns reduce spend, never below zero, and leave the purchase and visit counts alone: the
  customer did come to the shop, which is what the lapse rules are about.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from itertools import pairwise

SAME_VISIT_WINDOW = timedelta(hours=12)
_SECONDS_PER_DAY = 86_400.0


class ActivityError(ValueError):
    """An event that can never be applied to an activity summary (negative amount, naive time)."""


def require_aware(moment: datetime, what: str) -> datetime:
    """Reject naive datetimes: a time without a zone would silently shift every gap by hours."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ActivityError(f"{what} must carry a time zone, got {moment.isoformat()}")
    return moment


def days_between(earlier: datetime, later: datetime) -> float:
    """Elapsed days as a float (negative if `later` is earlier)."""
    return (later - earlier).total_seconds() / _SECONDS_PER_DAY


@dataclass(frozen=True, slots=True)
class GapStatistics:
    """Running mean and spread of the days between consecutive visits (Welford's algorithm)."""

    count: int = 0
    mean_days: float = 0.0
    sum_squared_deviations: float = 0.0

    def including(self, gap_days: float) -> GapStatistics:
        """These statistics with one more gap; numerically stable, no history needed."""
        count = self.count + 1
        delta = gap_days - self.mean_days
        mean = self.mean_days + delta / count
        return GapStatistics(count, mean, self.sum_squared_deviations + delta * (gap_days - mean))

    @property
    def variance_days(self) -> float | None:
        """Sample variance (n - 1) of the gap in days squared; None below two gaps."""
        if self.count < 2:
            return None
        return self.sum_squared_deviations / (self.count - 1)


@dataclass(frozen=True, slots=True)
class ActivitySummary:
    """One customer's buying so far, across all merchants of the programme.

    `spend_minor` is in integer minor units of the programme currency (net of returns).
    `visit_count` counts shopping occasions and is what the lapse model calls purchases.
    """

    first_purchase_at: datetime | None = None
    last_purchase_at: datetime | None = None
    purchase_count: int = 0
    visit_count: int = 0
    spend_minor: int = 0
    gaps: GapStatistics = field(default_factory=GapStatistics)
    merchant_ids: frozenset[str] = frozenset()
    late_purchase_count: int = 0

    @property
    def has_purchased(self) -> bool:
        return self.purchase_count > 0

    @property
    def average_order_value_minor(self) -> int:
        """Net spend per purchase, rounded half up to a whole minor unit; 0 before any purchase."""
        if self.purchase_count == 0:
            return 0
        return (2 * self.spend_minor + self.purchase_count) // (2 * self.purchase_count)

    @property
    def mean_gap_days(self) -> float | None:
        return self.gaps.mean_days if self.gaps.count else None

    @property
    def gap_variance_days(self) -> float | None:
        return self.gaps.variance_days


def apply_purchase(
    summary: ActivitySummary,
    purchased_at: datetime,
    amount_minor: int,
    merchant_id: str,
    *,
    same_visit_window: timedelta = SAME_VISIT_WINDOW,
) -> ActivitySummary:
    """The summary after one more purchase, whatever order purchases arrive in."""
    require_aware(purchased_at, "purchase time")
    _require_amount(amount_minor, "purchase amount")
    if same_visit_window < timedelta(0):
        raise ActivityError("the same-visit window cannot be negative")
    counted = replace(
        summary,
        purchase_count=summary.purchase_count + 1,
        spend_minor=summary.spend_minor + amount_minor,
        merchant_ids=summary.merchant_ids | {merchant_id},
    )
    first, last = summary.first_purchase_at, summary.last_purchase_at
    if first is None or last is None:
        return replace(
            counted, first_purchase_at=purchased_at, last_purchase_at=purchased_at, visit_count=1
        )
    if purchased_at >= last:
        return _after_last_purchase(counted, last, purchased_at, same_visit_window)
    if purchased_at <= first:
        return _before_first_purchase(counted, first, purchased_at, same_visit_window)
    return _between_known_purchases(counted, first, last, purchased_at, same_visit_window)


def apply_return(summary: ActivitySummary, amount_minor: int) -> ActivitySummary:
    """The summary after goods worth `amount_minor` were returned: spend never goes below 0."""
    _require_amount(amount_minor, "return amount")
    return replace(summary, spend_minor=max(0, summary.spend_minor - amount_minor))


def _after_last_purchase(
    summary: ActivitySummary, last: datetime, purchased_at: datetime, window: timedelta
) -> ActivitySummary:
    if purchased_at - last <= window:
        return replace(summary, last_purchase_at=purchased_at)
    return replace(
        summary,
        last_purchase_at=purchased_at,
        visit_count=summary.visit_count + 1,
        gaps=summary.gaps.including(days_between(last, purchased_at)),
    )


def _before_first_purchase(
    summary: ActivitySummary, first: datetime, purchased_at: datetime, window: timedelta
) -> ActivitySummary:
    late = replace(
        summary, first_purchase_at=purchased_at, late_purchase_count=summary.late_purchase_count + 1
    )
    if first - purchased_at <= window:
        return late
    return replace(
        late,
        visit_count=summary.visit_count + 1,
        gaps=summary.gaps.including(days_between(purchased_at, first)),
    )


def _between_known_purchases(
    summary: ActivitySummary,
    first: datetime,
    last: datetime,
    purchased_at: datetime,
    window: timedelta,
) -> ActivitySummary:
    # Whether it is a new visit depends on purchases we cannot see here (issue 15: counting it
    # as one made Jan 1, 20, 10, 10 four visits); `with_history` makes it exact.
    return replace(summary, late_purchase_count=summary.late_purchase_count + 1)


def visit_statistics(
    purchase_times: Iterable[datetime], same_visit_window: timedelta = SAME_VISIT_WINDOW
) -> tuple[int, GapStatistics]:
    """Visits and gap statistics of a complete purchase history, in any order.

    Purchases are chained into visits as `apply_purchase` does for in-order arrivals: a
    purchase within the window of the one before it belongs to the same visit, and a gap is
    measured from the previous purchase to the one that starts the next visit.
    """
    times = sorted(require_aware(t, "purchase time") for t in purchase_times)
    visits, gaps = (1 if times else 0), GapStatistics()
    for before, after in pairwise(times):
        if after - before > same_visit_window:
            visits += 1
            gaps = gaps.including(days_between(before, after))
    return visits, gaps


def with_history(
    summary: ActivitySummary,
    purchase_times: Sequence[datetime],
    same_visit_window: timedelta = SAME_VISIT_WINDOW,
) -> ActivitySummary:
    """The summary with visits and gaps recomputed from every purchase's time.

    Only when the history is complete (as many times as purchases counted): a customer whose
    early purchases predate the history keeps the incremental figures.
    """
    if len(purchase_times) != summary.purchase_count or not purchase_times:
        return summary
    visits, gaps = visit_statistics(purchase_times, same_visit_window)
    return replace(summary, visit_count=visits, gaps=gaps)


def _require_amount(amount_minor: int, what: str) -> None:
    # bool is an int subclass; True as "1 cent" is a bug upstream, not a purchase.
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int):
        raise ActivityError(
            f"{what} must be an integer number of minor units, got {amount_minor!r}"
        )
    if amount_minor < 0:
        raise ActivityError(f"{what} cannot be negative, got {amount_minor}")
