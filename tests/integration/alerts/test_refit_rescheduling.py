"""POST /v1/admin/model/refit answers 202 once the fit is stored; moving every pending lapse
check to the new fit is the background job's work, marked on the fit when done."""

from __future__ import annotations

from datetime import datetime

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from services.alerts.activity.repository import ActivityRepository
from services.alerts.app import build_app
from services.alerts.clock.service import FixedClock
from services.alerts.domain.lapse import LapseRules
from services.alerts.domain.schedule import next_lapse_check
from services.alerts.model.repository import ModelRepository
from services.alerts.model.service import RESCHEDULE_LOCK, reschedule_pending_checks
from services.alerts.settings import AlertsSettings
from shared.db import create_engine
from shared.kafka.admin import ensure_topics
from shared.settings import KafkaSettings
from tests.integration.alerts.conftest import api_client, make_keys
from tests.integration.alerts.test_model_jobs import END, _simulated_customers
from tests.support.counting import wait_until
from tests.support.infra import Infra

pytestmark = pytest.mark.integration


async def due_times(engine: AsyncEngine) -> dict[str, datetime | None]:
    async with engine.connect() as conn:
        query = "SELECT customer_id, next_check_at FROM customer_activity"
        rows = await conn.execute(sa.text(query))
        return {row.customer_id: row.next_check_at for row in rows}


async def test_refit_answers_before_checks_move_and_the_job_moves_and_marks_them_once(
    alerts_db: str, infra: Infra
) -> None:
    engine = create_engine(alerts_db, pool_size=3)
    try:
        customers = _simulated_customers(300)
        async with engine.begin() as conn:
            await ActivityRepository(conn).save(customers)
        before = await due_times(engine)
        async with api_client(infra, alerts_db, FixedClock(END)) as client:
            keys = await make_keys(engine)
            refit = await client.post("/v1/admin/model/refit", headers=keys.admin)
            assert refit.status_code == 202, refit.text
            assert refit.headers["location"] == "/v1/admin/model"
            fit = refit.json()
            assert fit["checks_rescheduled_at"] is None and fit["customers_fitted"] == 300
            assert await due_times(engine) == before, "the request must not walk the customers"

            # Another instance holds the job's lock: this one leaves the fit alone.
            async with engine.connect() as other:
                await other.scalar(sa.select(sa.func.pg_advisory_lock(RESCHEDULE_LOCK)))
                assert await reschedule_pending_checks(engine, batch_size=50) is None
                await other.scalar(sa.select(sa.func.pg_advisory_unlock(RESCHEDULE_LOCK)))
            assert await due_times(engine) == before

            marked = await reschedule_pending_checks(engine, batch_size=50)
            assert marked is not None and marked.fit_id == fit["fit_id"]
            shown = (await client.get("/v1/admin/model", headers=keys.admin)).json()
            assert shown["fit_id"] == fit["fit_id"] and shown["checks_rescheduled_at"] is not None
        after = await due_times(engine)
        expected = {
            c.customer_id: next_lapse_check(c.summary, LapseRules(), marked.params, None)
            for c in customers
        }
        assert after == expected, "every pending check follows the new fit"
        moved = sum(after[c] != before[c] for c in before)
        assert moved > 0, "the fitted model brings some deadlines forward or back"
        assert await reschedule_pending_checks(engine) is None, "a marked fit is not walked again"
    finally:
        await engine.dispose()


async def test_the_running_service_moves_the_checks_right_after_an_http_refit(
    alerts_db: str, infra: Infra, unique: str
) -> None:
    settings = AlertsSettings(
        database_url=alerts_db,
        consumer_group=f"alerts-refit-{unique}",
        purchases_topic=f"pos.{unique}",
        points_topic=f"points.{unique}",
        rewards_topic=f"rewards.{unique}",
        alerts_topic=f"alerts.{unique}",
        reschedule_poll_seconds=3600,  # only the refit's wake-up can make it within the test
    )
    await ensure_topics(
        infra.bootstrap_servers, [*settings.consumed_topics, settings.alerts_topic], partitions=1
    )
    app = build_app(
        settings,
        kafka=KafkaSettings(bootstrap_servers=infra.bootstrap_servers),
        clock=FixedClock(END),
    )
    async with app.router.lifespan_context(app):
        engine: AsyncEngine = app.state.engine
        keys = await make_keys(engine)
        async with engine.begin() as conn:
            await ActivityRepository(conn).save(_simulated_customers(200))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://alerts") as client:
            answers: list[httpx.Response] = []

            async def accepted() -> object:
                # The startup refit (no customers yet) may still hold the refit lock: 409.
                answers.append(await client.post("/v1/admin/model/refit", headers=keys.admin))
                return answers[-1].status_code == 202 or answers[-1].text

            await wait_until(accepted, timeout=20, interval=0.2)
            fit_id = answers[-1].json()["fit_id"]

            async def marked() -> object:
                async with engine.connect() as conn:
                    stored = await ModelRepository(conn).latest()
                assert stored is not None and stored.fit_id == fit_id
                return stored.checks_rescheduled_at is not None or "checks not moved yet"

            await wait_until(marked, timeout=30, interval=0.2)
