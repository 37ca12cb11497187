"""Milestone-rule routes (admin): what every N lifetime points or a tier reached pays."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from services.rewards.milestones.schemas import (
    MilestoneDocument,
    MilestoneRules,
    MilestoneRuleView,
)
from services.rewards.milestones.service import save_rule
from services.rewards.scopes import Admin
from services.rewards.uow import request_uow
from services.rewards.vouchers.schemas import AdminKey, Cursor
from shared.http.pagination import decode_cursor, split_page, text

router = APIRouter(prefix="/v1/admin", tags=["admin"])


@router.get("/milestone-rules", summary="Every milestone rule (paged)")
async def milestone_list(
    request: Request,
    _: Admin,
    limit: Annotated[int, Query(ge=1, le=1000, description="Items per page")] = 500,
    cursor: Cursor = None,
) -> MilestoneRules:
    """In rule-key order; follow `next_cursor` for more."""
    after = decode_cursor(cursor, {"after": text})["after"] if cursor is not None else None
    async with request_uow(request) as uow:
        rows = await uow.milestones.page(limit + 1, after)
    page, next_cursor = split_page(rows, limit, lambda last: {"after": last.rule_key})
    return MilestoneRules(
        rules=[MilestoneRuleView.model_validate(dict(r._mapping)) for r in page],
        next_cursor=next_cursor,
    )


@router.put("/milestone-rules/{rule_key}", summary="Create or change a milestone rule")
async def put_milestone(
    request: Request, rule_key: AdminKey, body: MilestoneDocument, _: Admin
) -> MilestoneRuleView:
    values = {"rule_key": rule_key, **body.model_dump()}
    async with request_uow(request) as uow:
        await save_rule(uow, values)
    return MilestoneRuleView.model_validate(values)
