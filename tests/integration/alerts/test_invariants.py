"""GET /v1/admin/invariants and `loyalty invariants` on a real alerts database: a healthy
database reports nothing; rows broken by SQL (constraints dropped first where the database
would refuse them) are each reported, on whichever page their customer id falls."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from sqlalchemy.ext.asyncio import AsyncEngine

from services.alerts.activity.repository import ActivityRepository, TierSighting
from services.alerts.app import build_app
from services.alerts.clock.service import FixedClock
from services.alerts.domain.activity import ActivitySummary, apply_purchase
from services.alerts.domain.records import CustomerActivity
from services.alerts.lapse.service import AlertScanner
from services.alerts.settings import AlertsSettings
from shared.db import create_engine
from shared.settings import KafkaSettings
from tests.integration.alerts.conftest import Keys, api_client, day, make_keys, problem
from tests.support.infra import Infra, free_port
from tooling.cli_invariants import check_service

pytestmark = pytest.mark.integration

NOW = day(60)


def weekly_shopper(customer: str, first_day: float = 0) -> CustomerActivity:
    """Four weekly visits from `first_day`, due when three weeks of silence have passed."""
    summary = ActivitySummary()
    for visit in range(4):
        summary = apply_purchase(summary, day(first_day + 7 * visit), 5_000, "m1")
    return CustomerActivity(
        customer,
        summary,
        currency="EUR",
        merchant_spend_minor={"m1": summary.spend_minor},
        next_check_at=day(first_day + 21 + 21),
    )


@dataclass
class Shop:
    engine: AsyncEngine
    db_url: str
    customers: list[str]  # at risk on day 60
    lapsed: str  # silent long enough to have lapsed: nothing left to check
    tier_only: str  # known from a points event only, never bought

    async def execute(self, *statements: str) -> None:
        async with self.engine.begin() as conn:
            for statement in statements:
                await conn.execute(sa.text(statement))

    async def copy_alert(self, of: str, to: str) -> None:
        """A second open alert like `of`'s, for customer `to`."""
        await self.execute(
            "INSERT INTO alerts (alert_id, customer_id, kind, status, rule, reason,"
            " value_at_risk_minor, currency, segment, last_purchase_at, tripped_at, opened_at) "
            f"SELECT gen_random_uuid(), '{to}', kind, status, rule, reason, value_at_risk_minor,"
            " currency, segment, last_purchase_at, tripped_at, opened_at"
            f" FROM alerts WHERE customer_id = '{of}'"
        )


@pytest.fixture
async def shop(alerts_db: str, unique: str) -> AsyncIterator[Shop]:
    customers = [f"c{i}-{unique}" for i in range(5)]
    lapsed, tier_only = f"old-{unique}", f"tier-{unique}"
    engine = create_engine(alerts_db, pool_size=2)
    try:
        async with engine.begin() as conn:
            activities = [weekly_shopper(c) for c in customers]
            await ActivityRepository(conn).save(
                [*activities, weekly_shopper(lapsed, first_day=-70)]
            )
            await ActivityRepository(conn).record_tiers([TierSighting(tier_only, "gold", day(1))])
        outcome = await AlertScanner(engine, FixedClock(NOW)).scan_due(NOW)
        assert outcome.raised == 6, f"five at-risk alerts and one lapsed: {outcome}"
        yield Shop(engine, alerts_db, customers, lapsed, tier_only)
    finally:
        await engine.dispose()


async def break_every_invariant(shop: Shop, unique: str) -> dict[str, str]:
    """One broken row per invariant; returns customer -> the violation expected for it."""
    c = shop.customers
    await shop.execute(
        "DROP INDEX uq_alerts_open_customer_kind",
        "ALTER TABLE customer_activity DROP CONSTRAINT ck_customer_activity_counts_in_range",
        f"UPDATE customer_activity SET spend_minor = -1 WHERE customer_id = '{c[2]}'",
        f"UPDATE customer_activity SET next_check_at = NULL WHERE customer_id = '{c[3]}'",
    )
    await shop.copy_alert(c[0], c[0])
    # Ghosts: one sorts between two customers, one after everyone (the unbounded last page).
    await shop.copy_alert(c[1], f"{c[1]}-ghost")
    await shop.copy_alert(c[1], f"zz-ghost-{unique}")
    return {
        c[0]: "duplicate_open_alert",
        f"{c[1]}-ghost": "alert_without_customer",
        c[2]: "counts_out_of_range",
        c[3]: "next_check_missing",
        f"zz-ghost-{unique}": "alert_without_customer",
    }


async def invariants(client: httpx.AsyncClient, keys: Keys, **params: Any) -> dict[str, Any]:
    response = await client.get("/v1/admin/invariants", params=params, headers=keys.admin)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def every_page(client: httpx.AsyncClient, keys: Keys, limit: int) -> list[dict[str, Any]]:
    pages, cursor = [], None
    while True:
        page = await invariants(client, keys, limit=limit, **({"cursor": cursor} if cursor else {}))
        pages.append(page)
        cursor = page["next_cursor"]
        if cursor is None:
            return pages


async def test_a_healthy_database_breaks_no_invariant_on_any_page(shop: Shop, infra: Infra) -> None:
    async with api_client(infra, shop.db_url, FixedClock(NOW)) as client:
        keys = await make_keys(shop.engine)
        whole = await invariants(client, keys)
        assert whole == {
            "checked_customers": 7,
            "sound": True,
            "breaking_customers": [],
            "violations": [],
            "next_cursor": None,
        }, "at-risk, lapsed and never-bought customers are all in order"
        pages = await every_page(client, keys, limit=3)
        assert [p["checked_customers"] for p in pages] == [3, 3, 1]
        assert all(p["sound"] for p in pages)

        problem(await client.get("/v1/admin/invariants", headers=keys.reader), 403, "scope_missing")
        bad_cursor = await client.get(
            "/v1/admin/invariants", params={"cursor": "not-ours"}, headers=keys.admin
        )
        body = problem(bad_cursor, 422, "validation_failed")
        assert body["errors"][0]["field"] == "query.cursor"


async def test_each_broken_row_is_reported_whole_or_page_by_page(
    shop: Shop, infra: Infra, unique: str
) -> None:
    expected = await break_every_invariant(shop, unique)
    async with api_client(infra, shop.db_url, FixedClock(NOW)) as client:
        keys = await make_keys(shop.engine)
        whole = await invariants(client, keys)
        assert whole["sound"] is False
        assert whole["breaking_customers"] == sorted(expected)
        found = {v["customer_id"]: v["kind"] for v in whole["violations"]}
        assert found == expected, f"every broken row, and only those: {whole['violations']}"
        duplicate = next(v for v in whole["violations"] if v["kind"] == "duplicate_open_alert")
        assert duplicate["detail"].startswith("2 open lapse alerts")

        for limit in (1, 2, 4):
            pages = await every_page(client, keys, limit=limit)
            paged = [(v["customer_id"], v["kind"]) for p in pages for v in p["violations"]]
            assert sorted(paged) == sorted(expected.items()), f"limit {limit}: {pages}"
            assert sum(p["checked_customers"] for p in pages) == 7


async def test_loyalty_invariants_checks_alerts_directly_when_the_service_is_down(
    shop: Shop, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALERTS_URL", f"http://127.0.0.1:{free_port()}")
    healthy = await check_service("alerts", shop.db_url, 2.0)
    assert healthy.sound is True, healthy.line()
    assert "invariant_violations (direct)" in healthy.how
    await break_every_invariant(shop, unique)
    broken = await check_service("alerts", shop.db_url, 2.0)
    assert broken.sound is False and "5 out of balance" in broken.detail, broken.line()


@contextmanager
def serving(infra: Infra, db_url: str) -> Iterator[str]:
    """The alerts app under uvicorn on a free port (a thread), for clients outside this loop."""
    app = build_app(
        AlertsSettings(database_url=db_url, run_workers=False),
        kafka=KafkaSettings(bootstrap_servers=infra.bootstrap_servers),
        clock=FixedClock(NOW),
    )
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the alerts app did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


async def test_loyalty_invariants_asks_the_running_service(
    shop: Shop, infra: Infra, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = await make_keys(shop.engine)
    monkeypatch.setenv("ALERTS_ADMIN_KEY", keys.admin["Authorization"].removeprefix("Bearer "))
    with serving(infra, shop.db_url) as url:
        monkeypatch.setenv("ALERTS_URL", url)
        healthy = await check_service("alerts", None, 10.0)
        assert healthy.sound is True and healthy.how.startswith("GET "), healthy.line()
        await break_every_invariant(shop, unique)
        broken = await check_service("alerts", None, 10.0)
    assert broken.sound is False and "5 violation(s)" in broken.detail, broken.line()
