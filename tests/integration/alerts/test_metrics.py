"""`loyalty_alerts_open` on /metrics follows the alerts raised, escalated and closed through
Kafka, with the whole service (consumer, scanner, gauge job) running in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.alerts.app import build_app
from services.alerts.clock.service import ClockMode
from services.alerts.settings import AlertsSettings
from shared.kafka.admin import ensure_topics
from shared.settings import KafkaSettings
from tests.integration.alerts.conftest import day, every, shopping
from tests.support.counting import publish, wait_until
from tests.support.infra import Infra

pytestmark = pytest.mark.integration

Counts = dict[tuple[str, str], float]


def open_alerts_in(exposition: str) -> Counts:
    """The `loyalty_alerts_open` samples of a Prometheus text page, by (kind, status)."""
    return {
        (sample.labels["kind"], sample.labels["status"]): sample.value
        for family in text_string_to_metric_families(exposition)
        if family.name == "loyalty_alerts_open"
        for sample in family.samples
    }


@asynccontextmanager
async def running_service(
    infra: Infra, alerts_db: str, unique: str
) -> AsyncIterator[tuple[AlertsSettings, httpx.AsyncClient]]:
    settings = AlertsSettings(
        database_url=alerts_db,
        consumer_group=f"alerts-metrics-{unique}",
        purchases_topic=f"pos.{unique}",
        points_topic=f"points.{unique}",
        rewards_topic=f"rewards.{unique}",
        alerts_topic=f"alerts.{unique}",
        clock=ClockMode.EVENT,
        scan_interval_seconds=0.2,
        open_alerts_gauge_interval_seconds=0.2,
    )
    topics = [*settings.consumed_topics, settings.alerts_topic]
    await ensure_topics(infra.bootstrap_servers, topics, partitions=2)
    app = build_app(settings, kafka=KafkaSettings(bootstrap_servers=infra.bootstrap_servers))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://alerts") as client:
            yield settings, client


async def test_open_alerts_gauge_counts_alerts_by_status_as_they_open_escalate_and_close(
    infra: Infra, alerts_db: str, unique: str
) -> None:
    weekly, steady, passer_by = f"weekly-{unique}", f"steady-{unique}", f"passer-{unique}"
    bootstrap = infra.bootstrap_servers
    async with running_service(infra, alerts_db, unique) as (settings, client):
        pos = settings.purchases_topic

        async def gauge_reads(expected: Counts) -> None:
            async def shows() -> object:
                response = await client.get("/metrics")
                assert response.status_code == 200, response.text
                found = open_alerts_in(response.text)
                return True if found == expected else found

            await wait_until(shows, timeout=30, interval=0.2)

        # Two weekly shoppers go quiet after day 28; 22 days later both are at risk.
        await publish(bootstrap, pos, every(weekly, days=7, visits=5, last=28))
        await publish(bootstrap, pos, every(steady, days=7, visits=5, last=28))
        await publish(bootstrap, pos, [shopping(passer_by, day(28 + 22))])
        await gauge_reads({("lapse", "at_risk"): 2.0, ("lapse", "lapsed"): 0.0})

        # One comes back: their alert closes and no longer counts.
        await publish(bootstrap, pos, [shopping(steady, day(28 + 23))])
        await gauge_reads({("lapse", "at_risk"): 1.0, ("lapse", "lapsed"): 0.0})

        # Months of silence: the first alert escalates (counted as lapsed, no longer at risk)
        # and the shopper who came back on day 51 lapses too, in a new alert (their 23-day
        # absence broke the weekly rhythm, so by the window: 2 x 113 days after day 51).
        await publish(bootstrap, pos, [shopping(passer_by, day(51 + 227))])
        await gauge_reads({("lapse", "at_risk"): 0.0, ("lapse", "lapsed"): 2.0})


def scan_passes_in(exposition: str) -> float | None:
    """`loyalty_alerts_scan_passes_total` of a Prometheus text page (None if absent)."""
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == "loyalty_alerts_scan_passes_total":
                return sample.value
    return None


async def test_completed_scanner_passes_are_counted_on_metrics_so_a_wait_can_prove_a_scan(
    infra: Infra, alerts_db: str, unique: str
) -> None:
    async with running_service(infra, alerts_db, unique) as (_, client):
        first = scan_passes_in((await client.get("/metrics")).text)
        assert first is not None, "the scan pass counter must be on /metrics"

        async def two_more() -> object:
            now = scan_passes_in((await client.get("/metrics")).text)
            return True if now is not None and now >= first + 2 else now

        await wait_until(two_more, timeout=30, interval=0.2)
