"""Fitted BG/NBD parameters (`model_parameters`) and the histories they are fitted on.

Runs in the unit of work's transaction and never commits; the advisory lock a periodic job
holds for its whole round is taken on its own connection (`exclusive`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.alerts.db import model_parameters
from services.alerts.domain.bgnbd import BgNbdParams
from services.alerts.domain.records import StoredModel

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


class ModelRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def latest(self) -> StoredModel | None:
        query = sa.select(model_parameters).order_by(model_parameters.c.fit_id.desc()).limit(1)
        row = (await self.conn.execute(query)).mappings().first()
        return None if row is None else model_from_row(row)

    async def latest_params(self) -> BgNbdParams | None:
        stored = await self.latest()
        return stored.params if stored else None

    async def distinct_histories(self, as_of: datetime) -> Sequence[sa.Row[Any]]:
        """(repeat visits, recency days, age days, customers) per distinct day-level history."""
        return (await self.conn.execute(_DISTINCT_HISTORIES, {"as_of": as_of})).all()

    async def store(self, params: BgNbdParams, as_of: datetime) -> StoredModel:
        statement = (
            sa.insert(model_parameters)
            .values(
                r=params.r,
                alpha=params.alpha,
                a=params.a,
                b=params.b,
                time_unit_days=params.unit_days,
                log_likelihood=params.log_likelihood,
                customers_fitted=params.n_customers,
                as_of=as_of,
            )
            .returning(*model_parameters.c)
        )
        return model_from_row((await self.conn.execute(statement)).mappings().one())

    async def mark_checks_rescheduled(self, fit_id: int) -> datetime:
        """Record that every pending lapse check now follows fit `fit_id`; returns when."""
        statement = (
            sa.update(model_parameters)
            .where(model_parameters.c.fit_id == fit_id)
            .values(checks_rescheduled_at=sa.func.now())
            .returning(model_parameters.c.checks_rescheduled_at)
        )
        marked: datetime = (await self.conn.execute(statement)).scalar_one()
        return marked


def model_from_row(row: Mapping[Any, Any]) -> StoredModel:
    params = BgNbdParams(
        r=row["r"],
        alpha=row["alpha"],
        a=row["a"],
        b=row["b"],
        log_likelihood=row["log_likelihood"],
        n_customers=row["customers_fitted"],
        time_unit=timedelta(days=row["time_unit_days"]),
    )
    return StoredModel(
        row["fit_id"], params, row["as_of"], row["fitted_at"], row["checks_rescheduled_at"]
    )


@asynccontextmanager
async def exclusive(engine: AsyncEngine, key: int) -> AsyncIterator[bool]:
    """True inside if this instance holds the advisory lock `key` for the duration."""
    async with engine.connect() as conn:
        held = bool(await conn.scalar(sa.select(sa.func.pg_try_advisory_lock(key))))
        try:
            yield held
        finally:
            if held:
                await conn.scalar(sa.select(sa.func.pg_advisory_unlock(key)))
