"""Events the alerts service publishes on `loyalty.alerts`, the topic operations monitor.

Alerts go to people (CRM staff, store managers), never to an automatic discount, so every
event says in words why it was raised and what is at stake. Ids are derived from what caused
the event (`derived_event_id`), never drawn at random, so a replay derives the same ids and
downstream consumers deduplicate it:

* `alert.raised` / `alert.escalated`: from the alert id, itself derived from the customer, the
  alert kind and the last purchase before the silence (one alert per silence);
* `customer.reactivated`: from the purchase event that ended the silence;
* `follow_up.due`: from the customer (a first-time guest is followed up once).
"""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from shared.contracts.envelope import EventEnvelope
from shared.contracts.fields import (
    Currency,
    Identifier,
    Money,
    check_minor_units,
    implied_by_fast_money,
)

AlertKind = Literal["lapse"]
AlertStatus = Literal["at_risk", "lapsed"]
LapseRuleName = Literal["inactivity", "own_rhythm", "alive_probability", "no_purchase_probability"]
ValueSegment = Literal["A", "B", "C"]

ALERTS_SOURCE = "alerts"


class _Data(BaseModel):
    # Unknown fields are kept: a newer alerts service may add fields before consumers know them.
    model_config = ConfigDict(extra="allow", frozen=True)


class _AlertFacts(_Data):
    """What every lapse alert event tells the people who can act on it."""

    alert_id: uuid.UUID
    kind: AlertKind
    rule: LapseRuleName = Field(description="The rule that tripped first for this status.")
    reason: str = Field(
        min_length=1,
        max_length=500,
        examples=["usually buys every 7 days; last purchase 24 days ago"],
    )
    value_at_risk: Money = Field(
        description="Average order value x purchases expected to be lost over the horizon."
    )
    currency: Currency
    segment: ValueSegment = Field(description="A/B/C by revenue rank at the customer's merchant.")
    tier: Identifier | None = Field(default=None, description="Programme tier, when known.")
    merchant_id: Identifier | None = Field(
        default=None, description="The merchant where the customer spends most (net)."
    )
    last_purchase_at: AwareDatetime
    days_since_last_purchase: int = Field(ge=0)

    @model_validator(mode="after")
    @implied_by_fast_money
    def _precision_fits_currency(self) -> _AlertFacts:
        check_minor_units(self.value_at_risk, self.currency)
        return self


class AlertRaisedData(_AlertFacts):
    status: AlertStatus


class AlertEscalatedData(_AlertFacts):
    previous_status: Literal["at_risk"] = "at_risk"
    status: Literal["lapsed"] = "lapsed"


class CustomerReactivatedData(_Data):
    days_away: int = Field(ge=0, description="Whole days between the last two purchases.")
    alert_was_raised: bool = Field(description="True if a lapse alert was open when they came.")
    alert_id: uuid.UUID | None = None
    alert_status: AlertStatus | None = Field(
        default=None, description="The open alert's status, or what the rules said if none."
    )
    previous_purchase_at: AwareDatetime
    merchant_id: Identifier
    order_id: Identifier


class FollowUpDueData(_Data):
    first_purchase_at: AwareDatetime
    merchant_id: Identifier | None = None
    store_id: Identifier | None = None
    days_after_first_purchase: int = Field(ge=0)


class AlertRaised(EventEnvelope):
    """A customer's silence tripped a lapse rule: someone should reach out in person."""

    type: Literal["alert.raised"]
    version: Literal[1]
    data: AlertRaisedData


class AlertEscalated(EventEnvelope):
    """An at-risk customer stayed silent long enough to count as lapsed."""

    type: Literal["alert.escalated"]
    version: Literal[1]
    data: AlertEscalatedData


class CustomerReactivated(EventEnvelope):
    """A customer came back after a silence the rules had noticed (win-back measurement)."""

    type: Literal["customer.reactivated"]
    version: Literal[1]
    data: CustomerReactivatedData


class FollowUpDue(EventEnvelope):
    """A first-time customer's follow-up is due (the coffee house's message after 7 days)."""

    type: Literal["follow_up.due"]
    version: Literal[1]
    data: FollowUpDueData


ALERT_EVENTS: tuple[type[EventEnvelope], ...] = (
    AlertRaised,
    AlertEscalated,
    CustomerReactivated,
    FollowUpDue,
)
