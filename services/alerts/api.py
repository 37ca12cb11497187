"""HTTP API of the alerts service: the ranked at-risk list, acknowledgements, one customer's
activity, and the administration of thresholds and the model.

Who may do what (API-key scopes, `scopes.py`):
- `alerts:read`: list alerts, read a customer's activity, and ACKNOWLEDGE an alert. The people
  who read the at-risk list are the ones who call the customer, so acknowledging is part of
  reading it; a dedicated scope would only be handed out together with this one. The extra
  check: a key bound to a merchant sees and acknowledges only that merchant's alerts (the
  alert's merchant is the customer's home merchant) and only customers who bought there.
- `admin`: thresholds, the model and the invariant check.

Acknowledging is idempotent: the first acknowledgement (who, when, note, which key) is kept,
and repeating it answers 200 with that first acknowledgement unchanged; a different note later
does not rewrite the record. Acknowledging a closed alert is allowed (a call may be logged
after the customer came back).

Each request runs in one transaction, committed before the response is built.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, BackgroundTasks, Depends, Path, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncEngine

from services.alerts.activity_view import customer_activity_view, service_now
from services.alerts.backtest import TrialRefused, backtest_from_database, result_document
from services.alerts.clock import AlertsClock
from services.alerts.db import alert_thresholds
from services.alerts.invariants import (
    check_invariants_page,
    decode_invariants_cursor,
    encode_invariants_cursor,
)
from services.alerts.model_jobs import (
    PeriodicJob,
    RefitRefused,
    refit_model_or_explain,
    reschedule_lapse_checks,
)
from services.alerts.queries import (
    AlertFilters,
    alert_by_id,
    alert_out,
    decode_cursor,
    encode_cursor,
    list_alerts,
)
from services.alerts.records import StoredModel
from services.alerts.repository import (
    acknowledge_alert,
    activity_of,
    api_key_name,
    latest_model,
    load_threshold_book,
    put_thresholds,
    stored_overrides,
)
from services.alerts.schemas import (
    AcknowledgeRequest,
    AlertOut,
    AlertPage,
    AlertState,
    BacktestOut,
    BacktestRequest,
    CustomerActivityOut,
    InvariantReport,
    InvariantViolationOut,
    ModelOut,
    ProblemOut,
    ThresholdScopeOut,
    ThresholdsOut,
    ThresholdsPut,
    ThresholdValues,
)
from services.alerts.scopes import ALERTS_READ
from services.alerts.thresholds import (
    ThresholdBook,
    ThresholdOverrides,
    Thresholds,
    ThresholdScope,
    merged,
)
from shared.auth import ApiPrincipal
from shared.errors import Conflict, Forbidden, NotFound, Unprocessable
from shared.http import PROBLEM_JSON, ensure_merchant, require
from shared.http.security import require_programme_admin

log = logging.getLogger(__name__)

_ID_PATTERN = r"^[A-Za-z0-9._:@/-]+$"
_CUSTOMER_PATTERN = r"^[A-Za-z0-9._:@-]+$"


def _problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {"model": ProblemOut, "content": {PROBLEM_JSON: {}}}
        for status in (401, 403, 422, *statuses)
    }


def _engine(request: Request) -> AsyncEngine:
    engine: AsyncEngine = request.app.state.engine
    return engine


def _clock(request: Request) -> AlertsClock:
    clock: AlertsClock = request.app.state.alerts_clock
    return clock


Reader = Annotated[ApiPrincipal, Depends(require(ALERTS_READ))]


# Thresholds (the default scope and every merchant's), the model and the invariant check
# span the programme: a key bound to one merchant could silence another's lapse warnings.
programme_admin = require_programme_admin(
    "alerts admin routes span every merchant of the programme; a key bound to "
    "merchant {merchant} may not use them"
)
Admin = Annotated[ApiPrincipal, Depends(programme_admin)]

alerts_router = APIRouter(prefix="/v1", tags=["alerts"])
admin_router = APIRouter(prefix="/v1/admin", tags=["admin"])


@alerts_router.get(
    "/alerts",
    response_model=AlertPage,
    summary="Alerts, most value at risk first",
    responses=_problems(),
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
    async with _engine(request).begin() as conn:
        rows, position = await list_alerts(conn, filters, after, limit)
    return AlertPage(
        items=[alert_out(row) for row in rows],
        next_cursor=encode_cursor(position) if position else None,
    )


@alerts_router.post(
    "/alerts/{alert_id}/ack",
    response_model=AlertOut,
    summary="Acknowledge an alert, with a note",
    responses=_problems(404),
)
async def acknowledge(
    request: Request, alert_id: uuid.UUID, body: AcknowledgeRequest, principal: Reader
) -> AlertOut:
    """Idempotent: the first acknowledgement is kept; repeating it returns it unchanged."""
    async with _engine(request).begin() as conn:
        row = await alert_by_id(conn, alert_id, lock=True)
        if row is None:
            raise NotFound(f"no alert {alert_id}", code="alert_not_found", alert_id=alert_id)
        if principal.merchant_id is not None:
            ensure_merchant(principal, row["merchant_id"] or "")
        at = await service_now(conn, _clock(request))
        # Audit: who acted is the key that authenticated, never what the body claims.
        key_name = await api_key_name(conn, principal.key_id) or principal.key_id
        updated = await acknowledge_alert(
            conn,
            alert_id,
            by=key_name,
            note=body.note,
            key_id=principal.key_id,
            at=at,
            claimed_by=body.by,
        )
    assert updated is not None  # locked above, so it still exists
    return alert_out(updated)


@alerts_router.get(
    "/customers/{customer_id}/activity",
    response_model=CustomerActivityOut,
    summary="One customer's summary, rhythm, model scores and segment",
    responses=_problems(404),
)
async def customer_activity(
    request: Request,
    customer_id: Annotated[str, Path(min_length=1, max_length=64, pattern=_CUSTOMER_PATTERN)],
    principal: Reader,
) -> CustomerActivityOut:
    async with _engine(request).begin() as conn:
        if principal.merchant_id is not None:
            known = await activity_of(conn, customer_id)
            if known is not None and principal.merchant_id not in known.summary.merchant_ids:
                raise Forbidden(
                    "this customer has not bought at the merchant this API key is bound to",
                    code="merchant_mismatch",
                    merchant_id=principal.merchant_id,
                )
        return await customer_activity_view(conn, customer_id, _clock(request))


# --- administration -------------------------------------------------------------------------


def _values(thresholds: Thresholds) -> ThresholdValues:
    rules, day = thresholds.rules, 86_400.0
    return ThresholdValues(
        inactivity_window_days=rules.inactivity_window.total_seconds() / day,
        rhythm_multiple=rules.rhythm_multiple,
        rhythm_min_visits=rules.rhythm_min_visits,
        rhythm_max_variation=rules.rhythm_max_variation,
        at_risk_alive_probability=rules.at_risk_alive_probability,
        lapsed_alive_probability=rules.lapsed_alive_probability,
        at_risk_no_purchase_probability=rules.at_risk_no_purchase_probability,
        lapsed_no_purchase_probability=rules.lapsed_no_purchase_probability,
        model_horizon_days=rules.model_horizon.total_seconds() / day,
        enabled_rules=sorted(rule.value for rule in rules.enabled),
        lapsed_multiple=rules.lapsed_multiple,
        follow_up_days=thresholds.follow_up_after.total_seconds() / day,
        risk_horizon_days=thresholds.risk_horizon.total_seconds() / day,
    )


def _scope_out(
    book: ThresholdBook,
    scope: ThresholdScope,
    scope_id: str,
    overrides: ThresholdOverrides,
    updated_at: Any = None,
) -> ThresholdScopeOut:
    layers = (overrides,) if scope is ThresholdScope.DEFAULT else (book.default, overrides)
    return ThresholdScopeOut(
        scope=scope,
        scope_id=scope_id or None,
        settings=overrides.model_dump(exclude_none=True),
        effective=_values(merged(*layers)),
        updated_at=updated_at,
    )


@admin_router.get("/thresholds", response_model=ThresholdsOut, responses=_problems())
async def get_thresholds(request: Request, _: Admin) -> ThresholdsOut:
    """The built-in defaults and every stored scope (default, per category, per merchant)."""
    async with _engine(request).begin() as conn:
        book = await load_threshold_book(conn)
        query = sa.select(alert_thresholds).order_by(
            alert_thresholds.c.scope, alert_thresholds.c.scope_id
        )
        rows = (await conn.execute(query)).mappings().all()
    scopes = []
    for row in rows:
        overrides = stored_overrides(row)
        if overrides is None:
            continue  # out of range (logged): not in force, so not shown as such
        scope = ThresholdScope(row["scope"])
        scopes.append(_scope_out(book, scope, row["scope_id"], overrides, row["updated_at"]))
    return ThresholdsOut(built_in=_values(Thresholds()), scopes=scopes)


def _check_consistent(book: ThresholdBook, change: ThresholdsPut) -> None:
    """Refuse overrides that, merged as they would be, put lapsed before at risk."""
    checks: list[tuple[str, tuple[ThresholdOverrides | None, ...]]]
    if change.scope is ThresholdScope.DEFAULT:
        others = [*book.by_merchant.items(), *book.by_category.items()]
        checks = [("settings", (change.settings,))]
        checks += [(f"scope {name}", (change.settings, other)) for name, other in others]
    else:
        checks = [("settings", (book.default, change.settings))]
    for what, layers in checks:
        try:
            merged(*layers)
        except ValueError as exc:
            raise Unprocessable(
                f"inconsistent thresholds ({what}): {exc}",
                code="validation_failed",
                errors=[
                    {"field": "body.settings", "rule": "thresholds_consistent", "message": str(exc)}
                ],
            ) from exc


async def _reschedule(engine: AsyncEngine) -> None:
    """Due times follow the thresholds: recompute them after a change (in the background)."""
    try:
        async with engine.connect() as conn:
            stored = await latest_model(conn)
        moved = await reschedule_lapse_checks(engine, stored.params if stored else None)
        log.info("thresholds changed: %d due times moved", moved)
    except Exception:
        log.exception("rescheduling after a threshold change failed; the next refit will")


@admin_router.put("/thresholds", response_model=ThresholdScopeOut, responses=_problems())
async def put_threshold_scope(
    request: Request, change: ThresholdsPut, background: BackgroundTasks, _: Admin
) -> ThresholdScopeOut:
    """Replace one scope's overrides; pending lapse checks are rescheduled under them."""
    engine = _engine(request)
    async with engine.begin() as conn:
        book = await load_threshold_book(conn)
        _check_consistent(book, change)
        await put_thresholds(conn, change.scope, change.scope_id or "", change.settings)
    if change.scope is ThresholdScope.DEFAULT:
        book.default = change.settings
    background.add_task(_reschedule, engine)
    return _scope_out(book, change.scope, change.scope_id or "", change.settings)


def _model_out(stored: StoredModel) -> ModelOut:
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


@admin_router.get("/model", response_model=ModelOut, responses=_problems(404))
async def get_model(request: Request, _: Admin) -> ModelOut:
    """The BG/NBD parameters in use (the latest fit)."""
    async with _engine(request).connect() as conn:
        stored = await latest_model(conn)
    if stored is None:
        raise NotFound("no model has been fitted yet", code="model_not_fitted")
    return _model_out(stored)


@admin_router.post(
    "/model/refit",
    response_model=ModelOut,
    status_code=202,
    responses=_problems(409),
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
        stored = await refit_model_or_explain(_engine(request), _clock(request))
    except RefitRefused as refused:
        raise Conflict(refused.message, code=refused.code) from refused
    rescheduler = getattr(request.app.state, "alerts_rescheduler", None)
    if isinstance(rescheduler, PeriodicJob):
        rescheduler.wake()  # otherwise a worker instance finds the unmarked fit when it polls
    response.headers["Location"] = str(request.url_for("get_model").path)
    return _model_out(stored)


@admin_router.post(
    "/backtest",
    response_model=BacktestOut,
    summary="Score the lapse rules on past purchases",
    responses=_problems(),
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
    async with _engine(request).connect() as conn:
        now = await service_now(conn, _clock(request))
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
        try:
            result = await backtest_from_database(
                conn, body.as_of, body.horizon_days, merchant_id=merchant, trial=body.settings
            )
        except TrialRefused as exc:
            raise _inconsistent_trial(exc) from exc
    return BacktestOut.model_validate(result_document(result, body.as_of))


def _inconsistent_trial(exc: TrialRefused) -> Unprocessable:
    return Unprocessable(
        f"inconsistent thresholds: {exc}",
        code="validation_failed",
        errors=[{"field": "body.settings", "rule": "thresholds_consistent", "message": str(exc)}],
    )


@admin_router.get("/invariants", response_model=InvariantReport, responses=_problems())
async def check_invariants(
    request: Request,
    _: Admin,
    limit: Annotated[int | None, Query(ge=1, le=1_000_000)] = None,
    cursor: Annotated[str | None, Query(min_length=1, max_length=400)] = None,
) -> InvariantReport:
    """Check every customer (or `limit` customers per page: follow `next_cursor`).

    At most one open alert per customer and kind; every open alert's customer is known;
    counts and spend never negative; a next lapse check for every customer who has bought
    and has no open lapsed alert. Each check is one set-based query over the page's range.
    """
    after = decode_invariants_cursor(cursor) if cursor is not None else None
    async with _engine(request).begin() as conn:
        page = await check_invariants_page(conn, after, limit)
    violations = [InvariantViolationOut(**asdict(v)) for v in page.violations]
    return InvariantReport(
        checked_customers=page.checked_customers,
        sound=not violations,
        breaking_customers=sorted({v.customer_id for v in violations}),
        violations=violations,
        next_cursor=encode_invariants_cursor(page.next_after) if page.next_after else None,
    )
