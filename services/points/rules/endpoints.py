"""Admin routes of the programme's rule versions (an unbound `admin` key): list, read, add
a version starting in the future, replace one that has not started, and its edit history.
Who changed what is the caller's API key, kept with the change."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, status

from services.points.ledger.schemas import problems
from services.points.rules.repository import RuleEdit, StoredVersion
from services.points.rules.schemas import (
    RuleEditOut,
    RuleVersionIn,
    RuleVersionOut,
    to_body,
    to_rules,
)
from services.points.rules.service import (
    RuleBookCache,
    add_version,
    edit_version,
    get_version,
    list_edits,
    list_versions,
)
from services.points.scopes import ProgrammeAdmin
from services.points.uow import PointsUnitOfWork

router = APIRouter(prefix="/v1/admin", tags=["admin"])

VersionId = Annotated[int, Path(ge=1, le=2**62)]


def _version_out(stored: StoredVersion) -> RuleVersionOut:
    body = to_body(stored.rules).model_dump()
    return RuleVersionOut(
        **body,
        id=stored.id,
        created_by=stored.created_by,
        recorded_at=stored.recorded_at,
        updated_by=stored.updated_by,
        updated_at=stored.updated_at,
    )


def _edit_out(edit: RuleEdit) -> RuleEditOut:
    body = to_body(edit.replaced).model_dump()
    return RuleEditOut(**body, edited_by=edit.edited_by, edited_at=edit.edited_at)


def _rules_changed(request: Request) -> None:
    cache: RuleBookCache = request.app.state.rule_cache
    cache.invalidate()


@router.get("/rules", response_model=list[RuleVersionOut], responses=problems(401, 403, 503))
async def list_rules(request: Request, principal: ProgrammeAdmin) -> list[RuleVersionOut]:
    """Every rule version, oldest first; the latest started one is in force."""
    async with PointsUnitOfWork.for_request(request) as uow:
        return [_version_out(v) for v in await list_versions(uow)]


@router.post(
    "/rules",
    response_model=RuleVersionOut,
    status_code=status.HTTP_201_CREATED,
    responses=problems(401, 403, 409, 422, 503),
)
async def create_rules(
    request: Request, body: RuleVersionIn, principal: ProgrammeAdmin
) -> RuleVersionOut:
    """Add a rule version starting in the future (`effective_from`)."""
    rules = to_rules(body)
    async with PointsUnitOfWork.for_request(request) as uow:
        stored = await add_version(uow, rules, principal.key_id)
    _rules_changed(request)
    return _version_out(stored)


@router.get(
    "/rules/{rule_id}", response_model=RuleVersionOut, responses=problems(401, 403, 404, 422, 503)
)
async def read_rules(
    request: Request, rule_id: VersionId, principal: ProgrammeAdmin
) -> RuleVersionOut:
    async with PointsUnitOfWork.for_request(request) as uow:
        return _version_out(await get_version(uow, rule_id))


@router.put(
    "/rules/{rule_id}",
    response_model=RuleVersionOut,
    responses=problems(401, 403, 404, 409, 422, 503),
)
async def update_rules(
    request: Request, rule_id: VersionId, body: RuleVersionIn, principal: ProgrammeAdmin
) -> RuleVersionOut:
    """Replace a version that has not started yet; one in force is 409 (add a new one).

    The replaced content is kept, with the caller's key and the time (see `/edits`).
    """
    rules = to_rules(body)
    async with PointsUnitOfWork.for_request(request) as uow:
        stored = await edit_version(uow, rule_id, rules, principal.key_id)
    _rules_changed(request)
    return _version_out(stored)


@router.get(
    "/rules/{rule_id}/edits",
    response_model=list[RuleEditOut],
    responses=problems(401, 403, 404, 422, 503),
)
async def list_rule_edits(
    request: Request, rule_id: VersionId, principal: ProgrammeAdmin
) -> list[RuleEditOut]:
    """What each edit of a version replaced, who edited it and when; oldest first."""
    async with PointsUnitOfWork.for_request(request) as uow:
        return [_edit_out(edit) for edit in await list_edits(uow, rule_id)]
