"""The whole alerts service as `python -m services.alerts` wires it, in-process: its lifespan
runs the consumer, outbox relay, scanner and periodic jobs against the real broker and db."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import httpx
import pytest

from services.alerts.app import build_app
from services.alerts.clock.service import ClockMode
from services.alerts.settings import AlertsSettings
from shared.contracts.alerts import AlertRaised
from shared.contracts.registry import decode_event
from shared.kafka.admin import ensure_topics
from shared.settings import KafkaSettings
from tests.integration.alerts.conftest import day, every, points_accrued, shopping
from tests.support.counting import publish, wait_until
from tests.support.dlq import read_topic
from tests.support.infra import Infra, free_port
from tests.support.processes import ROOT, output

pytestmark = pytest.mark.integration


async def test_the_running_service_raises_an_alert_when_event_time_passes_three_weeks(
    infra: Infra, alerts_db: str, unique: str
) -> None:
    settings = AlertsSettings(
        database_url=alerts_db,
        consumer_group=f"alerts-app-{unique}",
        purchases_topic=f"pos.{unique}",
        points_topic=f"points.{unique}",
        rewards_topic=f"rewards.{unique}",
        alerts_topic=f"alerts.{unique}",
        clock=ClockMode.EVENT,
        scan_interval_seconds=0.2,
        segment_refresh_interval_seconds=0.5,
    )
    assert settings.run_workers, "workers run by default"
    await ensure_topics(
        infra.bootstrap_servers, [*settings.consumed_topics, settings.alerts_topic], partitions=2
    )
    bootstrap = infra.bootstrap_servers
    weekly, passer_by = f"weekly-{unique}", f"passer-by-{unique}"
    app = build_app(settings, kafka=KafkaSettings(bootstrap_servers=bootstrap))
    async with app.router.lifespan_context(app):
        await publish(bootstrap, settings.purchases_topic, every(weekly, days=7, visits=5, last=28))
        await publish(bootstrap, settings.points_topic, [points_accrued(weekly, day(28), "gold")])
        # Nobody touches the clock: another customer's purchase 22 days later moves event time.
        await publish(bootstrap, settings.purchases_topic, [shopping(passer_by, day(28 + 22))])
        records = await read_topic(bootstrap, settings.alerts_topic, expected=2, timeout=40)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://alerts") as client:
            ready = await client.get("/readyz")
    events = [decode_event(r.value) for r in records if r.value is not None]
    raised = [e for e in events if isinstance(e, AlertRaised)]
    assert [(e.customer_id, e.data.status, e.data.rule, e.data.tier) for e in raised] == [
        (weekly, "at_risk", "own_rhythm", "gold")
    ], f"the service should raise one alert for the silent weekly shopper: {events}"
    assert raised[0].occurred_at == day(28 + 21), "raised at the moment three weeks passed"
    assert {e.type for e in events} >= {"alert.raised", "follow_up.due"}
    assert ready.status_code == 200, ready.text


async def test_python_dash_m_serves_http_and_stops_cleanly_on_sigterm(
    infra: Infra, alerts_db: str, unique: str
) -> None:
    port = free_port()
    environment = {
        **os.environ,
        "ALERTS_DATABASE_URL": alerts_db,
        "ALERTS_HTTP_PORT": str(port),
        "ALERTS_CONSUMER_GROUP": f"alerts-main-{unique}",
        "ALERTS_PURCHASES_TOPIC": f"pos.{unique}",
        "ALERTS_POINTS_TOPIC": f"points.{unique}",
        "ALERTS_REWARDS_TOPIC": f"rewards.{unique}",
        "KAFKA_BOOTSTRAP_SERVERS": infra.bootstrap_servers,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "services.alerts"],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:

            async def healthy() -> object:
                try:
                    return (await client.get("/healthz")).status_code == 200 or "not yet"
                except httpx.TransportError as exc:
                    return repr(exc)

            await wait_until(healthy, timeout=30, interval=0.2)
            unauthorised = await client.get("/v1/alerts")
        assert unauthorised.status_code == 401, "the API is served, behind API keys"
        process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(process.wait, 30)
        logged = output(process)
        # uvicorn finishes the shutdown, then re-raises the signal it caught, so a clean stop
        # exits "killed by SIGTERM" (-15) or 0; what matters is that the lifespan completed.
        assert code in (0, -signal.SIGTERM), f"SIGTERM must stop the service: {logged}"
        assert "Application shutdown complete" in logged, f"shutdown did not finish: {logged}"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
