"""The BG/NBD model: refit on every summary, and move the pending lapse checks to each fit.

A refit reads every customer, so it runs on a schedule (a day), never per scan, and one
instance at a time (a PostgreSQL advisory lock; the others skip that round).

Refit. Customers are reduced to (repeat visits, recency, age) measured in whole days at the
clock's "now" and grouped in SQL, so identical histories become one weighted row: a million
customers shrink to the number of distinct day-level histories. Day resolution moves nothing
material for a model counted in weeks. The fit itself (numpy/scipy, in the domain) runs in a
worker thread.

Rescheduling. The probabilistic rule's deadlines move with the model, so after a fit every
pending due time is recomputed: O(customers with a pending check), minutes for a million. A
fit is stored with `checks_rescheduled_at` NULL and `reschedule_pending_checks` (the periodic
refit runs it at once; the HTTP refit leaves it to the rescheduling job, woken in-process and
polling otherwise) does the walk under its own advisory lock and then marks the fit. The mark
lives in the database, so a crash or restart mid-walk leaves the work to the next round, on
any instance, and a fit is never walked twice once marked.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from services.alerts.clock.service import AlertsClock
from services.alerts.domain.bgnbd import WEEK, BgNbdParams, ModelFitError, fit_bgnbd
from services.alerts.domain.records import StoredModel
from services.alerts.lapse.service import reschedule_lapse_checks
from services.alerts.model.repository import ModelRepository, exclusive
from services.alerts.uow import AlertsUnitOfWork

log = logging.getLogger(__name__)


def _wall_now() -> datetime:
    return datetime.now(UTC)


_REFIT_LOCK = 0x41_1E_27_01
RESCHEDULE_LOCK = 0x41_1E_27_03


class RefitRefused(Exception):
    """Why a refit did not happen now; `code` is stable (the HTTP API reports it)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


async def refit_model(
    engine: AsyncEngine, clock: AlertsClock, *, reschedule_batch: int = 5000
) -> StoredModel | None:
    """Fit BG/NBD on every summary at the clock's now, store it and reschedule the pending
    checks under it (this runs as a background job already); None if not possible now."""
    try:
        stored = await refit_model_or_explain(engine, clock)
    except RefitRefused as refused:
        log.info("BG/NBD refit skipped: %s", refused.message)
        return None
    marked = await reschedule_pending_checks(engine, reschedule_batch)
    if marked is not None and marked.fit_id == stored.fit_id:
        return marked
    return stored


async def refit_model_or_explain(engine: AsyncEngine, clock: AlertsClock) -> StoredModel:
    """Fit and store the model, raising `RefitRefused` to say why nothing was fitted.

    The due times are NOT moved here: the fit is stored unmarked and
    `reschedule_pending_checks` moves them (see the module docstring).
    """
    async with exclusive(engine, _REFIT_LOCK) as held:
        if not held:
            raise RefitRefused("refit_in_progress", "another instance is refitting the model")
        async with engine.connect() as conn:
            as_of = await clock.now(conn)
            if as_of is None:
                raise RefitRefused("no_events_yet", "event time has not started: no event seen")
            histories = await ModelRepository(conn).distinct_histories(as_of)
        params = await _fit(histories)
        async with AlertsUnitOfWork.begin(engine, lambda: as_of) as uow:
            stored = await uow.models.store(params, as_of)
        log.info("BG/NBD refit on %d customers: %s", params.n_customers, params)
        return stored


async def _fit(histories: Sequence[sa.Row[Any]]) -> BgNbdParams:
    if not histories:
        raise RefitRefused("model_not_fittable", "no customer has purchased yet")
    table = np.array([[float(value) for value in row] for row in histories], dtype=np.float64)
    days_per_unit = WEEK.days
    try:
        return await asyncio.to_thread(
            fit_bgnbd,
            table[:, 0],
            table[:, 1] / days_per_unit,
            table[:, 2] / days_per_unit,
            table[:, 3],
            time_unit=WEEK,
        )
    except ModelFitError as exc:
        raise RefitRefused("model_not_fittable", str(exc)) from exc


async def reschedule_pending_checks(
    engine: AsyncEngine, batch_size: int = 5000
) -> StoredModel | None:
    """If the latest fit is not marked yet, move every pending due time to it and mark it.

    Returns the fit as marked; None when there was nothing to do or another instance is on
    it. A fit stored meanwhile stays unmarked, so the next round walks again under it.
    """
    async with exclusive(engine, RESCHEDULE_LOCK) as held:
        if not held:
            return None
        async with AlertsUnitOfWork.begin(engine, _wall_now) as uow:
            stored = await uow.models.latest()
        if stored is None or stored.checks_rescheduled_at is not None:
            return None
        moved = await reschedule_lapse_checks(engine, stored.params, batch_size)
        async with AlertsUnitOfWork.begin(engine, lambda: stored.as_of) as uow:
            marked_at = await uow.models.mark_checks_rescheduled(stored.fit_id)
        log.info("lapse checks moved to fit %d: %d due times changed", stored.fit_id, moved)
        return dataclasses.replace(stored, checks_rescheduled_at=marked_at)
