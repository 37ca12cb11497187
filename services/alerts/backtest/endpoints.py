"""HTTP route of the backtest: would the alerts have been right on past purchases?"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request

from services.alerts.backtest.schemas import BacktestOut, BacktestRequest
from services.alerts.backtest.service import TrialRefused, backtest_from_database, result_document
from services.alerts.scopes import Reader, problems
from services.alerts.uow import AlertsUnitOfWork
from shared.errors import Unprocessable
from shared.http import ensure_merchant

router = APIRouter(prefix="/v1/admin", tags=["admin"])


@router.post(
    "/backtest",
    response_model=BacktestOut,
    summary="Score the lapse rules on past purchases",
    responses=problems(),
)
async def run_backtest(request: Request, body: BacktestRequest, principal: Reader) -> BacktestOut:
    """Would the alerts have been right? Replays the purchases known at `as_of`, evaluates every
    lapse rule (with `settings` tried on top) and score, and compares with what happened in the
    `horizon_days` after: flagged, precision, recall, lift, value recall, AUC; overall and by
    home merchant. The horizon must have passed. A key bound to a merchant sees only the
    customers who bought there. Nothing is stored.
    """
    merchant = body.merchant_id
    if principal.merchant_id is not None:
        if merchant is not None:
            ensure_merchant(principal, merchant)
        merchant = principal.merchant_id
    async with AlertsUnitOfWork.of_request(request) as uow:
        _require_horizon_passed(body, uow.now)
        try:
            result = await backtest_from_database(
                uow.conn, body.as_of, body.horizon_days, merchant_id=merchant, trial=body.settings
            )
        except TrialRefused as exc:
            raise Unprocessable(
                f"inconsistent thresholds: {exc}",
                code="validation_failed",
                errors=[
                    {"field": "body.settings", "rule": "thresholds_consistent", "message": str(exc)}
                ],
            ) from exc
    return BacktestOut.model_validate(result_document(result, body.as_of))


def _require_horizon_passed(body: BacktestRequest, now: datetime) -> None:
    try:
        horizon_end = body.as_of + timedelta(days=body.horizon_days)
    except OverflowError:
        horizon_end = datetime.max.replace(tzinfo=UTC)  # beyond the calendar: not passed
    if horizon_end > now:
        raise Unprocessable(
            f"the horizon ends {horizon_end.isoformat()}, after now ({now.isoformat()}):"
            " what happened there is not known yet",
            code="validation_failed",
            errors=[
                {
                    "field": "body.horizon_days",
                    "rule": "horizon_passed",
                    "message": "as_of + horizon_days must not be after now",
                }
            ],
        )
