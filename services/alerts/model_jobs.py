"""Periodic jobs: refit the BG/NBD model on every summary, re-rank value segments.

Both read every customer, so they run on a schedule (a day, an hour), never per scan, and one
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
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from services.alerts.clock import AlertsClock
from services.alerts.db import customer_activity
from services.alerts.domain.bgnbd import WEEK, BgNbdParams, ModelFitError, fit_bgnbd
from services.alerts.ranking import refresh_value_segments
from services.alerts.records import CustomerActivity, OpenAlert, StoredModel, activity_from_row
from services.alerts.repository import (
    latest_model,
    load_threshold_book,
    mark_checks_rescheduled,
    open_alerts,
    set_follow_ups_due,
    set_next_checks,
    store_model,
)
from services.alerts.schedule import follow_up_due_at, next_lapse_check
from services.alerts.thresholds import ThresholdBook
from shared.errors import is_transient

log = logging.getLogger(__name__)

_REFIT_LOCK = 0x41_1E_27_01
_SEGMENTS_LOCK = 0x41_1E_27_02
_RESCHEDULE_LOCK = 0x41_1E_27_03

_DISTINCT_HISTORIES = sa.text(
    """
    SELECT x, recency_days, GREATEST(age_days, recency_days) AS age_days, count(*) AS customers
    FROM (
        SELECT visit_count - 1 AS x,
               CASE WHEN visit_count > 1
                    THEN round(extract(epoch FROM last_purchase_at - first_purchase_at) / 86400)
                    ELSE 0 END AS recency_days,
               round(extract(epoch FROM CAST(:as_of AS timestamptz) - first_purchase_at) / 86400)
                    AS age_days
        FROM customer_activity
        WHERE first_purchase_at IS NOT NULL AND first_purchase_at <= :as_of
    ) AS histories
    GROUP BY 1, 2, 3
    """
)


@asynccontextmanager
async def _exclusive(engine: AsyncEngine, key: int) -> AsyncIterator[bool]:
    """True inside if this instance holds the job's advisory lock for the duration."""
    async with engine.connect() as conn:
        held = bool(await conn.scalar(sa.select(sa.func.pg_try_advisory_lock(key))))
        try:
            yield held
        finally:
            if held:
                await conn.scalar(sa.select(sa.func.pg_advisory_unlock(key)))


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
    async with _exclusive(engine, _REFIT_LOCK) as held:
        if not held:
            raise RefitRefused("refit_in_progress", "another instance is refitting the model")
        async with engine.connect() as conn:
            as_of = await clock.now(conn)
            if as_of is None:
                raise RefitRefused("no_events_yet", "event time has not started: no event seen")
            histories = (await conn.execute(_DISTINCT_HISTORIES, {"as_of": as_of})).all()
        params = await _fit(histories)
        async with engine.begin() as conn:
            stored = await store_model(conn, params, as_of)
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
    async with _exclusive(engine, _RESCHEDULE_LOCK) as held:
        if not held:
            return None
        async with engine.connect() as conn:
            stored = await latest_model(conn)
        if stored is None or stored.checks_rescheduled_at is not None:
            return None
        moved = await reschedule_lapse_checks(engine, stored.params, batch_size)
        async with engine.begin() as conn:
            marked_at = await mark_checks_rescheduled(conn, stored.fit_id)
        log.info("lapse checks moved to fit %d: %d due times changed", stored.fit_id, moved)
        return dataclasses.replace(stored, checks_rescheduled_at=marked_at)


async def reschedule_lapse_checks(
    engine: AsyncEngine, model: BgNbdParams | None, batch_size: int = 5000
) -> int:
    """Recompute every pending due time under `model` and the current thresholds: lapse
    checks, and follow-ups not raised yet (a changed follow-up delay moves them too);
    returns how many customers moved.

    Walks the customers in id order, one transaction per batch. Rows another transaction
    holds are skipped: whoever holds them is rescheduling them with the latest model anyway.
    """
    after, moved = "", 0
    while True:
        async with engine.begin() as conn:
            query = (
                sa.select(customer_activity)
                .where(
                    customer_activity.c.customer_id > after,
                    sa.or_(
                        customer_activity.c.next_check_at.isnot(None),
                        customer_activity.c.follow_up_due_at.isnot(None),
                    ),
                )
                .order_by(customer_activity.c.customer_id)
                .limit(batch_size)
                .with_for_update(skip_locked=True)
            )
            batch = [activity_from_row(r) for r in (await conn.execute(query)).mappings().all()]
            if not batch:
                return moved
            still_open = await open_alerts(conn, [a.customer_id for a in batch])
            book = await load_threshold_book(conn)
            changes: dict[str, datetime | None] = {}
            follow_ups: dict[str, datetime | None] = {}
            for activity in batch:
                try:
                    _reschedule_one(activity, still_open, book, model, changes, follow_ups)
                except (ArithmeticError, ValueError):
                    # One customer whose numbers break (a bad stored threshold, an odd fit)
                    # must not stop the walk for everyone else, nor the worker.
                    log.exception("lapse check of %s not moved", activity.customer_id)
            await set_next_checks(conn, changes)
            await set_follow_ups_due(conn, follow_ups)
            moved += len(changes.keys() | follow_ups.keys())
            after = batch[-1].customer_id


def _reschedule_one(
    activity: CustomerActivity,
    still_open: Mapping[str, OpenAlert],
    book: ThresholdBook,
    model: BgNbdParams | None,
    changes: dict[str, datetime | None],
    follow_ups: dict[str, datetime | None],
) -> None:
    alert = still_open.get(activity.customer_id)
    rules = book.for_customer(activity.home_merchant_id, activity.main_category).rules
    due = next_lapse_check(activity.summary, rules, model, alert.status if alert else None)
    if activity.next_check_at is not None and due != activity.next_check_at:
        changes[activity.customer_id] = due
    if activity.follow_up_due_at is not None:
        # The delay of the merchant of the first purchase, as when it was set.
        scope = book.for_customer(activity.first_merchant_id, activity.main_category)
        follow_up = follow_up_due_at(activity, scope)
        if follow_up != activity.follow_up_due_at:
            follow_ups[activity.customer_id] = follow_up


async def refresh_segments(engine: AsyncEngine, clock: AlertsClock) -> int | None:
    """Re-rank every merchant's customers into A/B/C cutoffs; None if skipped this round."""
    async with _exclusive(engine, _SEGMENTS_LOCK) as held:
        if not held:
            return None
        async with engine.begin() as conn:
            now = await clock.now(conn)
            if now is None:
                return None
            return await refresh_value_segments(conn, now)


class PeriodicJob:
    """Runs `job` every `interval_seconds` until stopped; transient faults wait a round.

    `wake()` starts the next round now (after the current one, if one is running).
    """

    def __init__(
        self, name: str, job: Callable[[], Awaitable[object]], interval_seconds: float
    ) -> None:
        self.name = name
        self.job = job
        self.interval_seconds = interval_seconds
        self._stopping = asyncio.Event()
        self._nudged = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()
        self._nudged.set()

    def wake(self) -> None:
        self._nudged.set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.job()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                log.warning("%s: transient fault, next round retries: %s", self.name, exc)
            try:
                await asyncio.wait_for(self._nudged.wait(), timeout=self.interval_seconds)
            except TimeoutError:
                pass
            self._nudged.clear()
