"""Admin route of the liability report (scope `admin`; a merchant-bound key sees its own
merchant only)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from services.points.ledger.schemas import problems
from services.points.liability.schemas import LiabilityOut, MerchantLiabilityOut
from services.points.liability.service import liability
from services.points.scopes import Admin
from services.points.uow import PointsUnitOfWork

router = APIRouter(prefix="/v1/admin", tags=["admin"])


@router.get("/liability", response_model=LiabilityOut, responses=problems(401, 403, 503))
async def get_liability(request: Request, principal: Admin) -> LiabilityOut:
    """Available and pending points outstanding per merchant, as of now.

    A merchant-bound key sees its own merchant only, and no programme-wide debt.
    """
    async with PointsUnitOfWork.for_request(request) as uow:
        owed = await liability(uow, principal.merchant_id)
    rows = owed.merchants
    return LiabilityOut(
        as_of=uow.now,
        merchants=[
            MerchantLiabilityOut(
                merchant_id=r.merchant_id, available=r.available, pending=r.pending
            )
            for r in rows
        ],
        total_available=sum(r.available for r in rows),
        total_pending=sum(r.pending for r in rows),
        total_debt=owed.total_debt,
    )
