"""HTTP routes of the BG/NBD model: the fit in use, and a refit now (programme admins only)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from services.alerts.domain.records import StoredModel
from services.alerts.model.schemas import ModelOut
from services.alerts.model.service import RefitRefused, refit_model_or_explain
from services.alerts.scopes import Admin, problems
from services.alerts.uow import AlertsUnitOfWork
from shared.errors import Conflict, NotFound
from shared.jobs import PeriodicJob

router = APIRouter(prefix="/v1/admin", tags=["admin"])


@router.get("/model", response_model=ModelOut, responses=problems(404))
async def get_model(request: Request, _: Admin) -> ModelOut:
    """The BG/NBD parameters in use (the latest fit)."""
    async with AlertsUnitOfWork.of_request(request) as uow:
        stored = await uow.models.latest()
    if stored is None:
        raise NotFound("no model has been fitted yet", code="model_not_fitted")
    return model_out(stored)


@router.post(
    "/model/refit",
    response_model=ModelOut,
    status_code=202,
    responses=problems(409),
)
async def refit(request: Request, response: Response, _: Admin) -> ModelOut:
    """Fit the model on every summary now and store it; 202 with the new fit.

    The fit is done when this answers (it reads one row per distinct history, not per
    customer). Moving every pending lapse check to the new fit is not: it takes minutes for a
    million customers, so the background rescheduling job does it and then sets
    `checks_rescheduled_at`; follow `Location` (GET /v1/admin/model) to see when.

    409 with `refit_in_progress` while another instance refits, `no_events_yet` before event
    time has started, `model_not_fittable` when the data cannot support a fit.
    """
    try:
        stored = await refit_model_or_explain(
            request.app.state.engine, request.app.state.alerts_clock
        )
    except RefitRefused as refused:
        raise Conflict(refused.message, code=refused.code) from refused
    jobs = getattr(request.app.state, "alerts_jobs", None)
    rescheduler = getattr(jobs, "rescheduler", None)
    if isinstance(rescheduler, PeriodicJob):
        rescheduler.wake()  # otherwise a worker instance finds the unmarked fit when it polls
    response.headers["Location"] = str(request.url_for("get_model").path)
    return model_out(stored)


def model_out(stored: StoredModel) -> ModelOut:
    params = stored.params
    unit = "week" if params.unit_days == 7 else f"{params.unit_days:g} days"
    return ModelOut(
        fit_id=stored.fit_id,
        r=params.r,
        alpha=params.alpha,
        a=params.a,
        b=params.b,
        time_unit=unit,
        time_unit_days=params.unit_days,
        log_likelihood=params.log_likelihood,
        customers_fitted=params.n_customers,
        as_of=stored.as_of,
        fitted_at=stored.fitted_at,
        checks_rescheduled_at=stored.checks_rescheduled_at,
    )
