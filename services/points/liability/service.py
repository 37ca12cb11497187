"""The liability report: what the programme owes, per coalition partner."""

from __future__ import annotations

from dataclasses import dataclass

from services.points.domain.balances import MerchantLiability
from services.points.uow import PointsUnitOfWork


@dataclass(frozen=True)
class Liability:
    """Live points per merchant as of the unit of work's time, and the debt (None: not shown)."""

    merchants: list[MerchantLiability]
    total_debt: int | None


async def liability(uow: PointsUnitOfWork, merchant_id: str | None) -> Liability:
    """Every merchant's outstanding points and the programme's debt; with `merchant_id`, that
    merchant's row only and no programme-wide debt."""
    rows = await uow.liability.by_merchant(uow.now, merchant_id)
    debt = await uow.liability.total_debt() if merchant_id is None else None
    return Liability(rows, debt)
