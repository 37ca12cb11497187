"""HTTP routes of the threshold administration (programme admins only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query, Request

from services.alerts.scopes import Admin, problems
from services.alerts.thresholds import service
from services.alerts.thresholds.schemas import (
    ThresholdScopeOut,
    ThresholdsOut,
    ThresholdsPut,
    decode_scopes_cursor,
)
from services.alerts.uow import AlertsUnitOfWork

router = APIRouter(prefix="/v1/admin", tags=["admin"])


@router.get("/thresholds", response_model=ThresholdsOut, responses=problems())
async def get_thresholds(
    request: Request,
    _: Admin,
    limit: Annotated[int | None, Query(ge=1, le=1000)] = None,
    cursor: Annotated[str | None, Query(min_length=1, max_length=400)] = None,
) -> ThresholdsOut:
    """The built-in defaults and every stored scope (default, per category, per merchant),
    by scope and id; with `limit`, that many scopes per page: follow `next_cursor`."""
    after = decode_scopes_cursor(cursor) if cursor is not None else None
    async with AlertsUnitOfWork.of_request(request) as uow:
        return await service.thresholds_in_force(uow, after, limit)


@router.put("/thresholds", response_model=ThresholdScopeOut, responses=problems())
async def put_threshold_scope(
    request: Request, change: ThresholdsPut, background: BackgroundTasks, _: Admin
) -> ThresholdScopeOut:
    """Replace one scope's overrides; pending lapse checks are rescheduled under them."""
    async with AlertsUnitOfWork.of_request(request) as uow:
        changed = await service.replace_scope(uow, change)
    background.add_task(service.reschedule_after_change, request.app.state.engine)
    return changed
