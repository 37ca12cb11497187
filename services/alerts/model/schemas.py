"""The body of the model in use (the latest BG/NBD fit)."""

from __future__ import annotations

from pydantic import AwareDatetime, Field

from services.alerts.lapse.schemas import ResponseModel


class ModelOut(ResponseModel):
    fit_id: int
    r: float
    alpha: float
    a: float
    b: float
    time_unit: str = Field(examples=["week"], description="The unit alpha is expressed in.")
    time_unit_days: float
    log_likelihood: float
    customers_fitted: int
    as_of: AwareDatetime = Field(description="The 'now' customer ages were measured at.")
    fitted_at: AwareDatetime
    checks_rescheduled_at: AwareDatetime | None = Field(
        default=None,
        description="When every pending lapse check was moved to this fit; null while the"
        " background job is still doing it.",
    )
