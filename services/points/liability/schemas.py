"""Response body of the liability report."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class MerchantLiabilityOut(BaseModel):
    merchant_id: str | None = Field(description="None: programme-wide credits and adjustments")
    available: int
    pending: int


class LiabilityOut(BaseModel):
    """Outstanding points: what the programme owes, per coalition partner."""

    as_of: datetime
    merchants: list[MerchantLiabilityOut]
    total_available: int
    total_pending: int
    total_debt: int | None = Field(
        description=(
            "Points customers owe back (not attributed to merchants); null for a key bound "
            "to a merchant"
        )
    )
