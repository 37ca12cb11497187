"""HTTP route of one customer as operations see them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request

from services.alerts.customers.schemas import CustomerActivityOut
from services.alerts.customers.service import customer_activity_view
from services.alerts.scopes import Reader, problems
from services.alerts.uow import AlertsUnitOfWork

_CUSTOMER_PATTERN = r"^[A-Za-z0-9._:@-]+$"

router = APIRouter(prefix="/v1", tags=["alerts"])


@router.get(
    "/customers/{customer_id}/activity",
    response_model=CustomerActivityOut,
    summary="One customer's summary, rhythm, model scores and segment",
    responses=problems(404),
)
async def customer_activity(
    request: Request,
    customer_id: Annotated[str, Path(min_length=1, max_length=64, pattern=_CUSTOMER_PATTERN)],
    principal: Reader,
) -> CustomerActivityOut:
    async with AlertsUnitOfWork.of_request(request) as uow:
        return await customer_activity_view(uow, customer_id, principal)
