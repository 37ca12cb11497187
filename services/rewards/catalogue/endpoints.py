"""Catalogue routes: what partner apps offer customers, and (admin) every item."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from services.rewards.catalogue.schemas import (
    Catalogue,
    CatalogueAdmin,
    ClaimableItem,
    ItemDocument,
    ItemView,
)
from services.rewards.catalogue.service import save_item
from services.rewards.scopes import Admin, Read
from services.rewards.uow import request_uow
from services.rewards.vouchers.schemas import AdminKey, Cursor
from shared.http.pagination import decode_cursor, split_page, text

router = APIRouter(prefix="/v1", tags=["rewards"])
admin_router = APIRouter(prefix="/v1/admin", tags=["admin"])
PageLimit = Annotated[int, Query(ge=1, le=1000, description="Items per page")]


def _after(cursor: str | None) -> str | None:
    return decode_cursor(cursor, {"after": text})["after"] if cursor is not None else None


@router.get("/catalogue", summary="Items a customer can claim with points (paged)")
async def catalogue(
    request: Request, _: Read, limit: PageLimit = 500, cursor: Cursor = None
) -> Catalogue:
    """Items claimable now, in item-id order; follow `next_cursor` for more."""
    after = _after(cursor)
    async with request_uow(request) as uow:
        rows = await uow.catalogue.page(limit + 1, after, claimable_at=uow.now)
    page, next_cursor = split_page(rows, limit, lambda last: {"after": last.item_id})
    return Catalogue(items=[ClaimableItem.of(r) for r in page], next_cursor=next_cursor)


@admin_router.get("/catalogue", summary="Every catalogue item, claimable or not (paged)")
async def all_items(
    request: Request, _: Admin, limit: PageLimit = 500, cursor: Cursor = None
) -> CatalogueAdmin:
    after = _after(cursor)
    async with request_uow(request) as uow:
        rows = await uow.catalogue.page(limit + 1, after)
    page, next_cursor = split_page(rows, limit, lambda last: {"after": last.item_id})
    return CatalogueAdmin(items=[ItemView.of(r) for r in page], next_cursor=next_cursor)


@admin_router.put("/catalogue/{item_id}", summary="Create or change a catalogue item")
async def put_item(request: Request, item_id: AdminKey, body: ItemDocument, _: Admin) -> ItemView:
    async with request_uow(request) as uow:
        row = await save_item(uow, {"item_id": item_id, **body.model_dump()})
    return ItemView.of(row)
