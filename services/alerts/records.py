"""What the alerts service keeps per customer and per alert, between the tables and the domain.

`CustomerActivity` wraps the domain's `ActivitySummary` with what only the service needs: the
currency the spend is counted in, per-merchant and per-category spend (home merchant, main
category), the tier, and the due times that drive the scanners.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from services.alerts.domain.activity import ActivitySummary, GapStatistics
from services.alerts.domain.bgnbd import BgNbdParams
from services.alerts.domain.lapse import AlertStatus

LAPSE_KIND = "lapse"


@dataclass(frozen=True, slots=True)
class CustomerActivity:
    customer_id: str
    summary: ActivitySummary = field(default_factory=ActivitySummary)
    currency: str | None = None
    merchant_spend_minor: Mapping[str, int] = field(default_factory=dict)
    category_spend_minor: Mapping[str, int] = field(default_factory=dict)
    first_merchant_id: str | None = None
    first_store_id: str | None = None
    tier: str | None = None
    next_check_at: datetime | None = None
    follow_up_due_at: datetime | None = None
    follow_up_raised_at: datetime | None = None

    @property
    def home_merchant_id(self) -> str | None:
        """Where the customer spends most, net of returns (ties: the first by name)."""
        return _largest(self.merchant_spend_minor) or self.first_merchant_id

    @property
    def main_category(self) -> str | None:
        return _largest(self.category_spend_minor)

    @property
    def home_merchant_revenue_minor(self) -> int:
        home = self.home_merchant_id
        return self.merchant_spend_minor.get(home, 0) if home else 0


def _largest(spend: Mapping[str, int]) -> str | None:
    if not spend:
        return None
    return min(spend, key=lambda key: (-spend[key], key))


@dataclass(frozen=True, slots=True)
class OpenAlert:
    alert_id: uuid.UUID
    customer_id: str
    status: AlertStatus
    last_purchase_at: datetime


@dataclass(frozen=True, slots=True)
class StoredModel:
    """The latest fitted BG/NBD parameters and when they were fitted."""

    fit_id: int
    params: BgNbdParams
    as_of: datetime
    fitted_at: datetime
    checks_rescheduled_at: datetime | None = None  # None: due times not yet moved to this fit


def activity_from_row(row: Mapping[Any, Any]) -> CustomerActivity:
    summary = ActivitySummary(
        first_purchase_at=row["first_purchase_at"],
        last_purchase_at=row["last_purchase_at"],
        purchase_count=row["purchase_count"],
        visit_count=row["visit_count"],
        spend_minor=row["spend_minor"],
        gaps=GapStatistics(
            row["gap_count"], row["gap_mean_days"], row["gap_sum_squared_deviations"]
        ),
        merchant_ids=frozenset(row["merchant_ids"]),
        late_purchase_count=row["late_purchase_count"],
    )
    return CustomerActivity(
        customer_id=row["customer_id"],
        summary=summary,
        currency=row["currency"],
        merchant_spend_minor={k: int(v) for k, v in row["merchant_spend_minor"].items()},
        category_spend_minor={k: int(v) for k, v in row["category_spend_minor"].items()},
        first_merchant_id=row["first_merchant_id"],
        first_store_id=row["first_store_id"],
        tier=row["tier"],
        next_check_at=row["next_check_at"],
        follow_up_due_at=row["follow_up_due_at"],
        follow_up_raised_at=row["follow_up_raised_at"],
    )


def activity_to_row(activity: CustomerActivity) -> dict[str, Any]:
    summary = activity.summary
    return {
        "customer_id": activity.customer_id,
        "first_purchase_at": summary.first_purchase_at,
        "last_purchase_at": summary.last_purchase_at,
        "purchase_count": summary.purchase_count,
        "visit_count": summary.visit_count,
        "late_purchase_count": summary.late_purchase_count,
        "spend_minor": summary.spend_minor,
        "currency": activity.currency,
        "gap_count": summary.gaps.count,
        "gap_mean_days": summary.gaps.mean_days,
        "gap_sum_squared_deviations": summary.gaps.sum_squared_deviations,
        "merchant_ids": sorted(summary.merchant_ids),
        "merchant_spend_minor": dict(activity.merchant_spend_minor),
        "category_spend_minor": dict(activity.category_spend_minor),
        "first_merchant_id": activity.first_merchant_id,
        "first_store_id": activity.first_store_id,
        "tier": activity.tier,
        "next_check_at": activity.next_check_at,
        "follow_up_due_at": activity.follow_up_due_at,
        "follow_up_raised_at": activity.follow_up_raised_at,
    }


def model_from_row(row: Mapping[Any, Any]) -> StoredModel:
    params = BgNbdParams(
        r=row["r"],
        alpha=row["alpha"],
        a=row["a"],
        b=row["b"],
        log_likelihood=row["log_likelihood"],
        n_customers=row["customers_fitted"],
        time_unit=timedelta(days=row["time_unit_days"]),
    )
    return StoredModel(
        row["fit_id"], params, row["as_of"], row["fitted_at"], row["checks_rescheduled_at"]
    )
