"""Request and response bodies of the alert list and acknowledgements (the OpenAPI document is
built from them), and the list's opaque cursor.

Money leaves as a decimal string with its currency (`"771.43"`, `"EUR"`), never a JSON number;
times are RFC 3339 with an offset. Durations are whole or fractional days, named `_days`.
The cursor is base64 of a versioned text, so its layout can change without breaking anyone
who treats it as a token.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from services.alerts.lapse.repository import Position
from shared.errors import Unprocessable
from shared.money import format_money

_CURSOR_VERSION = "v1"
_MAX_BIGINT = 2**63 - 1

MoneyText = Annotated[str, Field(pattern=r"^[0-9]+(\.[0-9]+)?$", examples=["771.43"])]


class ResponseModel(BaseModel):
    model_config = ConfigDict(frozen=True)


class AlertState(StrEnum):
    """Open alerts wait for a person (or a purchase); closed ones were answered by a purchase."""

    OPEN = "open"
    CLOSED = "closed"
    ALL = "all"


class Acknowledgement(ResponseModel):
    at: AwareDatetime
    by: str = Field(
        description="The name of the API key that acknowledged (who holds it); for alerts"
        " acknowledged before the audit fix, the name the caller gave."
    )
    key_id: str | None = Field(default=None, description="The API key they used.")
    note: str | None = None
    claimed_by: str | None = Field(
        default=None, description="Who the caller said they were (their words, unverified)."
    )


class AlertOut(ResponseModel):
    alert_id: uuid.UUID
    customer_id: str
    kind: Literal["lapse"]
    status: Literal["at_risk", "lapsed"]
    rule: Literal["inactivity", "own_rhythm", "alive_probability", "no_purchase_probability"]
    reason: str = Field(examples=["usually buys every 7 days; last purchase 24 days ago"])
    value_at_risk: MoneyText = Field(
        description="Average order value x purchases expected to be lost over the horizon."
    )
    currency: str = Field(examples=["EUR"])
    segment: Literal["A", "B", "C"]
    tier: str | None = None
    merchant_id: str | None = None
    last_purchase_at: AwareDatetime
    tripped_at: AwareDatetime = Field(description="When the rule tripped for this status.")
    opened_at: AwareDatetime = Field(description="When a scanner noticed.")
    escalated_at: AwareDatetime | None = None
    closed_at: AwareDatetime | None = Field(
        default=None, description="Set when a purchase answered the alert."
    )
    open: bool
    acknowledgement: Acknowledgement | None = None


class AlertPage(ResponseModel):
    items: list[AlertOut]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` for the next page; null on the last page."
    )


class AcknowledgeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    by: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Who is acknowledging, in the caller's words: kept as `claimed_by`; the"
        " record's `by` is the API key's name.",
    )
    note: str = Field(
        min_length=1,
        max_length=2000,
        examples=["called; she moved house, will shop at the new store"],
    )


def encode_cursor(position: Position) -> str:
    text = f"{_CURSOR_VERSION}:{position.value_at_risk_minor}:{position.alert_id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> Position:
    """The position a cursor names; a 422 naming `cursor` when it is not one of ours."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        version, value, alert_id = (
            base64.urlsafe_b64decode(padded.encode("ascii")).decode().split(":")
        )
        if version != _CURSOR_VERSION or not 0 <= int(value) <= _MAX_BIGINT:
            raise ValueError(version)
        return Position(int(value), uuid.UUID(alert_id))
    except (ValueError, UnicodeError, binascii.Error) as exc:
        raise Unprocessable(
            "cursor is not a cursor this API returned",
            code="validation_failed",
            errors=[
                {
                    "field": "query.cursor",
                    "rule": "cursor_invalid",
                    "message": "pass next_cursor from a previous page unchanged",
                }
            ],
        ) from exc


def alert_out(row: Mapping[Any, Any]) -> AlertOut:
    """The response body of one stored alert."""
    acknowledgement = None
    if row["acknowledged_at"] is not None:
        acknowledgement = Acknowledgement(
            at=row["acknowledged_at"],
            by=row["acknowledged_by"] or "unknown",
            key_id=row["acknowledged_key_id"],
            note=row["ack_note"],
            claimed_by=row["ack_claimed_by"],
        )
    return AlertOut(
        alert_id=row["alert_id"],
        customer_id=row["customer_id"],
        kind=row["kind"],
        status=row["status"],
        rule=row["rule"],
        reason=row["reason"],
        value_at_risk=format_money(row["value_at_risk_minor"], row["currency"]),
        currency=row["currency"],
        segment=row["segment"],
        tier=row["tier"],
        merchant_id=row["merchant_id"],
        last_purchase_at=row["last_purchase_at"],
        tripped_at=row["tripped_at"],
        opened_at=row["opened_at"],
        escalated_at=row["escalated_at"],
        closed_at=row["closed_at"],
        open=row["closed_at"] is None,
        acknowledgement=acknowledgement,
    )
