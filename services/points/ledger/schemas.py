"""Typed edges of the points API: identifiers and moments as the contracts allow them,
opaque cursors, problem documents, and the balance and ledger bodies of the partner API.

Points are integers; money (spend still needed for the next tier) is a decimal string in
the programme currency, never a JSON number.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

import orjson
from fastapi import Path, Query
from pydantic import AfterValidator, AwareDatetime, BaseModel, Field

from services.points.domain.balances import Balance, DatedPoints
from services.points.domain.ledger import EntryKind, LedgerEntry
from services.points.domain.programme import ProgrammeRules
from services.points.domain.tiers import Tier
from services.points.ledger.service import AccountView
from shared.errors import Unprocessable
from shared.http.problem import PROBLEM_JSON

_ID_PATTERN = r"^[A-Za-z0-9._:@-]+$"
# Identifiers in paths: like the event contracts' `Identifier`, minus "/" (a path separator).
PathId = Annotated[str, Path(min_length=1, max_length=100, pattern=_ID_PATTERN)]
_BODY_ID_PATTERN = r"^[A-Za-z0-9._:@/-]+$"  # the contracts' `Identifier`
OptionalQueryId = Annotated[
    str | None, Query(min_length=1, max_length=100, pattern=_BODY_ID_PATTERN)
]
BodyId = Annotated[str, Field(min_length=1, max_length=100, pattern=_BODY_ID_PATTERN)]
# Customer ids exactly as the event envelope allows them, so every event can name them.
_CUSTOMER_CHARACTERS, _CUSTOMER_LENGTH = "A-Za-z0-9._:@-", 64
_CUSTOMER_PATTERN = rf"^[{_CUSTOMER_CHARACTERS}]+$"
CustomerPath = Annotated[
    str, Path(min_length=1, max_length=_CUSTOMER_LENGTH, pattern=_CUSTOMER_PATTERN)
]
CustomerBody = Annotated[
    str, Field(min_length=1, max_length=_CUSTOMER_LENGTH, pattern=_CUSTOMER_PATTERN)
]
OptionalCustomerQuery = Annotated[
    str | None, Query(min_length=1, max_length=64, pattern=_CUSTOMER_PATTERN)
]
MAX_POINTS = 1_000_000_000  # far above any real basket; keeps every sum inside BIGINT
_CURSOR_TEXT = re.compile(r"^[A-Za-z0-9._:@/-]{1,100}$")  # ids as the contracts allow them
_EARLIEST, _LATEST = datetime(1970, 1, 1, tzinfo=UTC), datetime(9000, 1, 1, tzinfo=UTC)


_CUSTOMER_ID = re.compile(rf"[{_CUSTOMER_CHARACTERS}]{{1,{_CUSTOMER_LENGTH}}}")


def is_customer_id(text: str) -> bool:
    """`CustomerPath` would accept `text` (checked without the framework, for a lean route)."""
    return _CUSTOMER_ID.fullmatch(text) is not None


def _sane_moment(moment: datetime) -> datetime:
    # Dates near year 1 or 9999 overflow when shifted to UTC or by months: refuse them here.
    if not _EARLIEST <= moment <= _LATEST:
        raise ValueError("must lie between 1970-01-01 and 9000-01-01")
    return moment


Moment = Annotated[AwareDatetime, AfterValidator(_sane_moment)]
"""RFC 3339 date-time with a time zone, within sane bounds."""


class InvalidCursor(Unprocessable):
    code, title = "invalid_cursor", "The cursor is not one this API issued"


def encode_cursor(position: dict[str, Any]) -> str:
    """An opaque page token: clients pass it back and never look inside."""
    return base64.urlsafe_b64encode(orjson.dumps(position)).decode().rstrip("=")


def decode_cursor(token: str, field: str, kind: type) -> Any:
    """The `field` of a cursor from `encode_cursor`; anything else is a 422 naming `cursor`."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        value = orjson.loads(raw)[field]
    except (binascii.Error, ValueError, TypeError, KeyError, orjson.JSONDecodeError):
        raise InvalidCursor("cursor: not a cursor from a previous page", field="cursor") from None
    malformed = isinstance(value, str) and not _CURSOR_TEXT.match(value)
    if not isinstance(value, kind) or isinstance(value, bool) or malformed:
        raise InvalidCursor("cursor: not a cursor from a previous page", field="cursor")
    return value


def money_text(minor: int, exponent: int) -> str:
    """Integer minor units as a decimal string with exactly `exponent` decimals."""
    return f"{Decimal(minor).scaleb(-exponent):.{exponent}f}"


class Problem(BaseModel):
    """An RFC 9457 problem document; `code` is stable, `detail` is for people."""

    type: str
    title: str
    status: int
    code: str
    detail: str | None = None
    instance: str | None = None


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the listed error statuses, as application/problem+json."""
    described = {
        401: "No API key, or not a valid one",
        403: "The key lacks the scope, or is bound to another merchant",
        404: "Not found",
        409: "Conflicts with the current state",
        422: "The request breaks a rule; `errors` or `field` name what",
        503: "The database is not reachable; retry later",
    }
    return {
        status: {
            "description": described.get(status, "Error"),
            "content": {PROBLEM_JSON: {"schema": Problem.model_json_schema()}},
        }
        for status in statuses
    }


Points = Annotated[int, Field(strict=True, ge=1, le=MAX_POINTS)]


class DatedPointsOut(BaseModel):
    at: datetime = Field(description="When these points become available (or expire)")
    points: int


class TierProgressOut(BaseModel):
    next_tier: Tier | None = Field(description="None at the top tier")
    purchases_needed: int
    spend_needed: str = Field(description="Decimal string in `currency`", examples=["120.00"])
    currency: str


class BalanceOut(BaseModel):
    """A customer's points now; expired points never count, whether or not the job ran."""

    customer_id: str
    as_of: datetime
    available: int = Field(description="Redeemable now, net of debt (negative when in debt)")
    pending: int = Field(description="Inside the merchants' return windows")
    pending_releases: list[DatedPointsOut]
    expiring_soon: int = Field(description="Points expiring within the next 30 days")
    expiring_dates: list[DatedPointsOut]
    debt: int = Field(description="Points reversed after they had been spent")
    lifetime_earned: int
    purchase_count: int
    tier: Tier
    progress: TierProgressOut


class BalanceSummary(BaseModel):
    available: int
    pending: int
    debt: int


class LedgerEntryOut(BaseModel):
    id: int = Field(description="Position in the ledger (later entries have larger ids)")
    kind: EntryKind
    points: int = Field(description="Signed: positive adds points, negative takes them")
    occurred_at: datetime
    merchant_id: str | None
    reference: str = Field(description="Order, return, redemption, credit or adjustment id")
    reason: str | None


class LedgerPage(BaseModel):
    entries: list[LedgerEntryOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page")


def _dated(items: tuple[DatedPoints, ...]) -> list[DatedPointsOut]:
    return [DatedPointsOut(at=item.at, points=item.points) for item in items]


def balance_out(view: AccountView, rules: ProgrammeRules, now: datetime) -> BalanceOut:
    currency = rules.earning.currency_rates.programme_currency
    exponent = rules.earning.currency_rates.exponent(currency)
    balance = view.balance
    return BalanceOut(
        customer_id=view.customer_id,
        as_of=now,
        available=balance.available,
        pending=balance.pending,
        pending_releases=_dated(balance.pending_releases),
        expiring_soon=balance.expiring_soon,
        expiring_dates=_dated(balance.expiring_dates),
        debt=balance.debt,
        lifetime_earned=view.lifetime_earned,
        purchase_count=view.purchase_count,
        tier=view.tier,
        progress=TierProgressOut(
            next_tier=view.progress.next_tier,
            purchases_needed=view.progress.purchases_needed,
            spend_needed=money_text(view.progress.spend_needed_minor, exponent),
            currency=currency,
        ),
    )


def _dated_json(items: tuple[DatedPoints, ...]) -> list[dict[str, Any]]:
    return [{"at": item.at, "points": item.points} for item in items]


def balance_json(view: AccountView, rules: ProgrammeRules, now: datetime) -> bytes:
    """`balance_out(view, rules, now).model_dump_json()`, the same bytes, written straight
    from the view: the hot read's body without building and serialising six models
    (tests/unit/points/test_lean_balance.py compares the two)."""
    currency = rules.earning.currency_rates.programme_currency
    exponent = rules.earning.currency_rates.exponent(currency)
    balance, progress = view.balance, view.progress
    document = {
        "customer_id": view.customer_id,
        "as_of": now,
        "available": balance.available,
        "pending": balance.pending,
        "pending_releases": _dated_json(balance.pending_releases),
        "expiring_soon": balance.expiring_soon,
        "expiring_dates": _dated_json(balance.expiring_dates),
        "debt": balance.debt,
        "lifetime_earned": view.lifetime_earned,
        "purchase_count": view.purchase_count,
        "tier": view.tier,
        "progress": {
            "next_tier": progress.next_tier,
            "purchases_needed": progress.purchases_needed,
            "spend_needed": money_text(progress.spend_needed_minor, exponent),
            "currency": currency,
        },
    }
    return orjson.dumps(document, option=orjson.OPT_UTC_Z)  # a zero offset as "Z", as pydantic


def entry_out(entry: LedgerEntry) -> LedgerEntryOut:
    return LedgerEntryOut(
        id=entry.sequence,
        kind=entry.kind,
        points=entry.points,
        occurred_at=entry.occurred_at,
        merchant_id=entry.merchant_id,
        reference=entry.reference,
        reason=entry.reason,
    )


def summary(balance: Balance) -> BalanceSummary:
    return BalanceSummary(available=balance.available, pending=balance.pending, debt=balance.debt)
