"""Partner routes of redemptions: spend points, and cancel a redemption (scope
`points:redeem`; `admin` implies it). A key bound to a merchant redeems or cancels only
at its own merchant."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, Response, status

from services.points.ledger.schemas import CustomerPath, PathId, problems
from services.points.redemptions.schemas import RedemptionIn, RedemptionOut, redemption_out
from services.points.redemptions.service import (
    RedemptionRequest,
    cancel_redemption,
    redeem,
    redemption_merchant,
)
from services.points.scopes import POINTS_REDEEM
from services.points.uow import PointsUnitOfWork
from shared.auth import ApiPrincipal
from shared.http.security import ensure_merchant, require

router = APIRouter(prefix="/v1", tags=["partner"])

IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="Chosen by the caller; a retry with the same key returns the same redemption",
    ),
]
Redeemer = Annotated[ApiPrincipal, Depends(require(POINTS_REDEEM))]


@router.post(
    "/customers/{customer_id}/redemptions",
    response_model=RedemptionOut,
    status_code=status.HTTP_201_CREATED,
    responses=problems(401, 403, 409, 422, 503),
    summary="Spend available points (idempotent by the Idempotency-Key header)",
    description=(
        "409 `insufficient_points` when the available points fall short (nothing is stored, "
        "so the key may be retried later). The same key with the same body returns the same "
        "redemption (header `Idempotent-Replayed: true`); with a different body, 422 "
        "`idempotency_key_reused`. Keys starting with `saga:` are reserved for catalogue "
        "claims (422 `idempotency_key_reserved`)."
    ),
)
async def post_redemption(
    request: Request,
    response: Response,
    customer_id: CustomerPath,
    body: RedemptionIn,
    principal: Redeemer,
    idempotency_key: IdempotencyKey,
) -> RedemptionOut:
    ensure_merchant(principal, body.merchant_id)
    asked = RedemptionRequest(
        customer_id, body.points, body.merchant_id, body.reference, idempotency_key
    )
    topic = request.app.state.settings.points_topic
    async with PointsUnitOfWork.for_request(request) as uow:
        outcome = await redeem(uow, asked, points_topic=topic)
    if outcome.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return redemption_out(outcome)


@router.post(
    "/redemptions/{redemption_id}/cancel",
    response_model=RedemptionOut,
    responses=problems(401, 403, 404, 409, 422, 503),
    summary="Give a redemption's points back, with their original expiry (idempotent)",
    description=(
        "409 `redemption_belongs_to_claim` for the debit of a rewards catalogue claim: its "
        "voucher may be out, so only the claim's own cancellation gives those points back."
    ),
)
async def post_cancel(
    request: Request, redemption_id: PathId, principal: Redeemer
) -> RedemptionOut:
    topic = request.app.state.settings.points_topic
    async with PointsUnitOfWork.for_request(request) as uow:
        ensure_merchant(principal, await redemption_merchant(uow, redemption_id))
        outcome = await cancel_redemption(uow, redemption_id, points_topic=topic)
    return redemption_out(outcome)
