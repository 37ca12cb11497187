"""What the alerts service keeps per customer and per alert (the repositories map rows to these).

`CustomerActivity` wraps the domain's `ActivitySummary` with what only the service needs: the
currency the spend is counted in, per-merchant and per-category spend (home merchant, main
category), the tier, and the due times that drive the scanners.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from services.alerts.domain.activity import ActivitySummary
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


@dataclass(frozen=True, slots=True)
class NewAlert:
    """A lapse alert to open, or the fresh facts of one to escalate."""

    alert_id: uuid.UUID
    customer_id: str
    status: AlertStatus
    rule: str
    reason: str
    value_at_risk_minor: int
    currency: str
    segment: str
    tier: str | None
    merchant_id: str | None
    last_purchase_at: datetime
    tripped_at: datetime
