"""Guarantee-claim bodies: a customer's complaint, the claim as decided, the overdue report."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import Field, ValidationInfo, field_validator

from services.rewards.domain.guarantee_claims import decide_by
from services.rewards.vouchers.schemas import NEXT_CURSOR, Body, Timestamp, View
from shared.contracts.fields import Currency, Identifier, Money


class MeasuredValue(Body):
    value: Annotated[Decimal, Field(ge=0, le=1_000_000, max_digits=12, decimal_places=3)]
    unit: str = Field(pattern="^(seconds|minutes|hours|breached)$")


class GuaranteeClaimRequest(Body):
    merchant_id: Identifier
    order_id: Identifier
    promise_kind: Identifier
    measured: MeasuredValue
    order_amount: Money | None = Field(
        default=None, description="Optional; must equal the recorded purchase when given."
    )
    currency: Currency | None = Field(
        default=None,
        validate_default=True,
        description="Optional; must equal the recorded purchase when given.",
    )

    @field_validator("currency")
    @classmethod
    def _amount_has_currency(cls, currency: str | None, info: ValidationInfo) -> str | None:
        if currency is None and info.data.get("order_amount") is not None:
            raise ValueError("currency is required when order_amount is given")
        return currency


class Decision(Body):
    """The reviewer's note. Who decided is the API key's name, never what the body says;
    `actor` is still accepted (older consoles send it) and kept as the note."""

    note: str | None = Field(default=None, min_length=1, max_length=500, pattern=r"^[^\x00]*$")
    actor: str | None = Field(default=None, min_length=1, max_length=200, pattern=r"^[^\x00]*$")

    @property
    def text(self) -> str | None:
        return self.note or self.actor


class GuaranteeClaimView(View):
    """A stored guarantee claim and its decision (`decide_by`: 24 hours after filing)."""

    claim_id: str
    customer_id: str
    merchant_id: str
    order_id: str
    promise_kind: str
    measured_value: int = Field(description="In whole seconds (1/0 for a yes/no breach)")
    measured_unit: str
    order_amount_minor: int | None
    currency: str | None
    filed_at: Timestamp
    status: str
    reason: str | None
    explanation: str | None
    compensation_id: str | None
    decided_at: Timestamp | None
    escalated_at: Timestamp | None
    overdue_at: Timestamp | None
    decide_by: Timestamp

    @classmethod
    def of(cls, row: Any) -> GuaranteeClaimView:
        view = dict(row._mapping)
        view["claim_id"] = str(row.claim_id)
        view["compensation_id"] = str(row.compensation_id) if row.compensation_id else None
        view["decide_by"] = decide_by(row.filed_at)
        return cls.model_validate(view)


class OverdueClaims(View):
    as_of: Timestamp
    deadline_hours: int
    claims: list[GuaranteeClaimView]
    next_cursor: str | None = Field(description=NEXT_CURSOR)
