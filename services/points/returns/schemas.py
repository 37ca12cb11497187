"""Response bodies of the parked-returns report."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from services.points.domain.book import ReturnRecord
from services.points.ledger.schemas import money_text
from shared.money import currency_exponent, is_known_currency


class ParkedReturnOut(BaseModel):
    return_id: str
    order_id: str
    customer_id: str
    merchant_id: str
    occurred_at: datetime
    refunded_amount: str = Field(description="Decimal string in `currency`")
    currency: str
    status: str = Field(description="parked: waiting for its order; rejected: cannot apply")
    rejection: str | None


class ParkedReturnPage(BaseModel):
    returns: list[ParkedReturnOut]
    next_cursor: str | None


def _amount(minor: int, currency: str) -> str:
    exponent = currency_exponent(currency) if is_known_currency(currency) else 2
    return money_text(minor, exponent)


def parked_return_out(record: ReturnRecord) -> ParkedReturnOut:
    return ParkedReturnOut(
        return_id=record.return_id,
        order_id=record.order_id,
        customer_id=record.customer_id,
        merchant_id=record.merchant_id,
        occurred_at=record.occurred_at,
        refunded_amount=_amount(record.refunded_minor, record.currency),
        currency=record.currency,
        status=record.status,
        rejection=record.rejection,
    )
