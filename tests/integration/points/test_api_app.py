"""The whole points process: the app's lifespan runs the consumer, the outbox relay and the
due-time jobs against the real broker and database; `python -m services.points` serves
HTTP and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from typing import Any

import httpx
import pytest

from services.points.domain.moments import add_months
from services.points.scopes import POINTS_READ
from shared.contracts.points import PointsAccrued, PointsExpired, PointsSettled
from shared.contracts.registry import decode_event
from shared.kafka.admin import ensure_topics
from tests.integration.points.api_client import points_api
from tests.integration.points.helpers import NOW, days_ago, purchase
from tests.support.counting import publish, wait_until
from tests.support.dlq import read_topic
from tests.support.infra import Infra, free_port

pytestmark = pytest.mark.integration


def topics(unique: str) -> dict[str, Any]:
    return {
        "consumer_group": f"points-app-{unique}",
        "purchases_topic": f"pos.purchases.{unique}",
        "rewards_topic": f"loyalty.rewards.{unique}",
        "points_topic": f"loyalty.points.{unique}",
    }


async def test_the_lifespan_consumes_relays_and_runs_the_due_jobs(
    infra: Infra, points_db: str, unique: str
) -> None:
    names = topics(unique)
    await ensure_topics(
        infra.bootstrap_servers,
        [names["purchases_topic"], names["rewards_topic"], names["points_topic"]],
        partitions=1,
    )
    async with points_api(
        infra,
        points_db,
        run_workers=True,
        jobs_interval_seconds=0.2,
        outstanding_gauge_interval_seconds=0.2,
        **names,
    ) as api:
        reader = await api.key(POINTS_READ)
        sale = purchase("zoe", "o-1", "100.00", days_ago(1))
        await publish(infra.bootstrap_servers, names["purchases_topic"], [sale])

        async def accrued() -> object:
            response = await api.client.get("/v1/customers/zoe/balance", headers=reader)
            return True if response.status_code == 200 else response.status_code

        await wait_until(accrued, timeout=30)
        balance = await api.balance("zoe", reader)
        assert (balance["pending"], balance["lifetime_earned"]) == (100, 100)
        merchant = sale["data"]["merchant_id"]
        pending_gauge = f'loyalty_points_outstanding{{merchant="{merchant}",state="pending"}} 100.0'

        async def counted() -> object:
            text = (await api.client.get("/metrics")).text
            return True if pending_gauge in text else "gauge not refreshed yet"

        await wait_until(counted, timeout=30)
        api.clock.pinned = add_months(NOW, 13)  # the jobs loop reads the same clock

        async def expired() -> object:
            response = await api.client.get(
                "/v1/customers/zoe/ledger", params={"kind": "expiry"}, headers=reader
            )
            return True if response.json()["entries"] else "no expiry entry yet"

        await wait_until(expired, timeout=30)
        out = await read_topic(infra.bootstrap_servers, names["points_topic"], 3, timeout=20)
        metrics = await api.client.get("/metrics")
        backlog = f'loyalty_outbox_backlog{{service="{names["consumer_group"]}"}}'
        assert backlog in metrics.text, "the app registers its relay for /metrics"

        async def gone() -> object:
            text = (await api.client.get("/metrics")).text
            return True if pending_gauge not in text else "expired points still counted"

        await wait_until(gone, timeout=30)
    events = [decode_event(record.value) for record in out if record.value is not None]
    assert [type(e) for e in events] == [PointsAccrued, PointsSettled, PointsExpired], (
        "the relay published what the consumer, the settlement and the expiry jobs wrote"
    )
    assert events[1].data.points == 100 and events[1].data.first_settled_purchase
    assert events[2].data.points == 100


async def test_python_m_services_points_serves_and_stops_cleanly_on_sigterm(
    infra: Infra, points_db: str, unique: str
) -> None:
    port = free_port()
    names = topics(unique)
    env = {
        **os.environ,
        "POINTS_DATABASE_URL": points_db,
        "POINTS_HTTP_PORT": str(port),
        "KAFKA_BOOTSTRAP_SERVERS": infra.bootstrap_servers,
        **{f"POINTS_{name.upper()}": value for name, value in names.items()},
    }
    await ensure_topics(infra.bootstrap_servers, list(names.values())[1:], partitions=1)
    process = subprocess.Popen(
        [sys.executable, "-m", "services.points"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:

            async def ready() -> object:
                try:
                    response = await client.get("/readyz")
                except httpx.TransportError as error:
                    return repr(error)
                return True if response.status_code == 200 else response.text

            await wait_until(ready, timeout=30, interval=0.2)
            unauthorised = await client.get("/v1/customers/zoe/balance")
            assert unauthorised.status_code == 401
        process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(process.wait, 30)
        log = process.stdout.read().decode() if process.stdout else ""
        # Uvicorn re-raises the signal once shut down, so a supervisor sees "terminated".
        assert code in (0, -signal.SIGTERM), f"points failed on SIGTERM (exit {code}):\n{log}"
        assert "Application shutdown complete" in log, f"the lifespan did not finish:\n{log}"
        assert "Traceback" not in log, log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
