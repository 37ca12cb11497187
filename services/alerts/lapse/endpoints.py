"""HTTP routes of the lapse alerts: the ranked at-risk list and acknowledgements.

Acknowledging is idempotent: the first acknowledgement (who, when, note, which key) is kept,
and repeating it answers 200 with that first acknowledgement unchanged; a different note later
does not rewrite the record. Acknowledging a closed alert is allowed (a call may be logged
after the customer came back). Each request runs in one unit of work, committed before the
response is built.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request

from services.alerts.lapse import service
from services.alerts.lapse.repository import AlertFilters
from services.alerts.lapse.schemas import (
    AcknowledgeRequest,
    AlertOut,
    AlertPage,
    AlertState,
    alert_out,
    decode_cursor,
    encode_cursor,
)
from services.alerts.scopes import Reader, problems
from services.alerts.uow import AlertsUnitOfWork
from shared.http import ensure_merchant

_ID_PATTERN = r"^[A-Za-z0-9._:@/-]+$"

router = APIRouter(prefix="/v1", tags=["alerts"])


@router.get(
    "/alerts",
    response_model=AlertPage,
    summary="Alerts, most value at risk first",
    responses=problems(),
)
async def get_alerts(
    request: Request,
    principal: Reader,
    state: AlertState = AlertState.OPEN,
    status: Literal["at_risk", "lapsed"] | None = None,
    kind: Literal["lapse"] | None = None,
    merchant: Annotated[
        str | None, Query(min_length=1, max_length=100, pattern=_ID_PATTERN)
    ] = None,
    segment: Literal["A", "B", "C"] | None = None,
    currency: Annotated[str | None, Query(pattern=r"^[A-Z]{3}$")] = None,
    acknowledged: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
) -> AlertPage:
    """Ranked by value at risk (ties by alert id); `next_cursor` continues the same order.

    Value at risk is compared in minor units, so filter by `currency` when a programme mixes
    currencies. A key bound to a merchant sees only that merchant's alerts.
    """
    if principal.merchant_id is not None:
        if merchant is not None:
            ensure_merchant(principal, merchant)
        merchant = principal.merchant_id
    after = decode_cursor(cursor) if cursor is not None else None
    filters = AlertFilters(state, status, kind, merchant, segment, currency, acknowledged)
    async with AlertsUnitOfWork.of_request(request) as uow:
        rows, position = await uow.alerts.page(filters, after, limit)
    return AlertPage(
        items=[alert_out(row) for row in rows],
        next_cursor=encode_cursor(position) if position else None,
    )


@router.post(
    "/alerts/{alert_id}/ack",
    response_model=AlertOut,
    summary="Acknowledge an alert, with a note",
    responses=problems(404),
)
async def acknowledge(
    request: Request, alert_id: uuid.UUID, body: AcknowledgeRequest, principal: Reader
) -> AlertOut:
    """Idempotent: the first acknowledgement is kept; repeating it returns it unchanged."""
    async with AlertsUnitOfWork.of_request(request) as uow:
        row = await service.acknowledge(
            uow, alert_id, principal, note=body.note, claimed_by=body.by
        )
    return alert_out(row)
