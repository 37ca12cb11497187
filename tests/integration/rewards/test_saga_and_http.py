"""The catalogue saga with the points service running too, and the HTTP API: a successful
claim, insufficient points, 20 concurrent claims on 5 units, a crash between the debit and
the voucher, voucher redemption, guarantee claims and the green channel."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from services.rewards.claims.service import request_claim
from services.rewards.jobs import run_due_jobs_once
from services.rewards.uow import RewardsUnitOfWork
from shared.kafka.admin import ensure_topics
from shared.outbox import OutboxRelay
from tests.integration.points.helpers import PointsStack, credit, points_stack
from tests.integration.rewards.helpers import (
    NOW,
    RESTAURANT,
    RewardsStack,
    days_ago,
    purchase,
    rewards_stack,
    serving,
)
from tests.support.counting import publish, wait_until
from tests.support.infra import Infra

pytestmark = pytest.mark.integration


@asynccontextmanager
async def both(
    infra: Infra, rewards_db: str, points_db: str, unique: str
) -> AsyncIterator[tuple[RewardsStack, PointsStack]]:
    async with (
        rewards_stack(infra, rewards_db, unique) as rewards,
        points_stack(infra, points_db, unique) as points,
    ):
        yield rewards, points


async def _give_points(rewards: RewardsStack, infra: Infra, customer: str, points: int) -> None:
    """Points arrive the real way: a credit applied by the points service, projected here."""
    await publish(
        infra.bootstrap_servers,
        rewards.rewards,
        [credit(customer, f"gift-{customer}", points, NOW)],
    )

    async def projected() -> object:
        got = await rewards.scalar(
            "SELECT available FROM customers WHERE customer_id = :c", c=customer
        )
        return True if got == points else f"projection says {got}"

    await wait_until(projected, timeout=30)


async def _item(
    client: httpx.AsyncClient, item_id: str, cost: int, stock: int | None = 5, **more: Any
) -> None:
    body = {
        "reward_code": f"{item_id}-voucher",
        "title": item_id,
        "points_cost": cost,
        "claimable_from": days_ago(1).isoformat(),
        "claimable_until": (NOW + timedelta(days=30)).isoformat(),
        "voucher_valid_days": 30,
        "total_stock": stock,
        **more,
    }
    response = await client.put(f"/v1/admin/catalogue/{item_id}", json=body)
    assert response.status_code == 200, response.text


async def test_claims_succeed_or_are_refused_and_stock_is_never_oversold(
    infra: Infra, rewards_db: str, points_db: str, unique: str
) -> None:
    async with both(infra, rewards_db, points_db, unique) as (rewards, points):
        async with points.consumer(), serving(rewards, infra) as client:
            await _give_points(rewards, infra, "kim", 1000)
            await _item(client, "coffee", 30, stock=5, merchant_id="cafe")
            first = await client.post("/v1/customers/kim/claims", json={"item_id": "coffee"})
            assert first.status_code == 201, first.text
            claim = first.json()
            assert claim["state"] == "issued" and claim["voucher"]["merchant_id"] == "cafe"
            # Twenty at once on the 4 units left (and one more than stock): exactly 4 win.
            responses = await asyncio.gather(
                *(
                    client.post("/v1/customers/kim/claims", json={"item_id": "coffee"})
                    for _ in range(20)
                )
            )
            codes = Counter(r.status_code for r in responses)
            assert codes == {201: 4, 409: 16}, f"exactly the stock left succeeds: {codes}"
            assert {r.json()["code"] for r in responses if r.status_code == 409} == {"out_of_stock"}
            assert await rewards.scalar("SELECT units_claimed FROM catalogue_items") == 5
            assert (
                await rewards.scalar("SELECT count(*) FROM vouchers WHERE origin = 'catalogue'")
                == 5
            )
            account = await points.account("kim")
            assert account.balance.available == 1000 - 5 * 30, "points spent once per voucher"
            # A stale projection (5000): the points service knows better; rejected, released.
            await _item(client, "spa", 851, stock=1)
            await rewards.execute("UPDATE customers SET available = 5000 WHERE customer_id = 'kim'")
            refused = await client.post("/v1/customers/kim/claims", json={"item_id": "spa"})
            assert refused.status_code == 409 and refused.json()["code"] == "claim_rejected", (
                refused.text
            )
            assert refused.json()["reason"] == "insufficient_points"
            assert (
                await rewards.scalar(
                    "SELECT units_claimed FROM catalogue_items WHERE item_id = 'spa'"
                )
                == 0
            )
            poor = await client.post("/v1/customers/nobody/claims", json={"item_id": "coffee"})
            assert poor.status_code == 409
            assert (await points.account("kim")).balance.available == 850, (
                "a rejection spends nothing"
            )
            # The voucher: redeemed once, only at its merchant.
            code = claim["voucher"]["code"]
            wrong = await client.post(f"/v1/vouchers/{code}/redeem", json={"merchant_id": "other"})
            assert wrong.status_code == 409 and wrong.json()["code"] == "voucher_wrong_merchant"
            ok = await client.post(f"/v1/vouchers/{code}/redeem", json={"merchant_id": "cafe"})
            assert ok.status_code == 200 and ok.json()["status"] == "redeemed"
            again = await client.post(f"/v1/vouchers/{code}/redeem", json={"merchant_id": "cafe"})
            assert again.status_code == 409 and again.json()["code"] == "voucher_already_redeemed"
            listing = (await client.get("/v1/customers/kim/rewards")).json()
            assert Counter(v["status"] for v in listing["vouchers"]) == {"active": 4, "redeemed": 1}


async def test_a_crash_between_debit_and_voucher_finishes_after_restart(
    infra: Infra, rewards_db: str, points_db: str, unique: str
) -> None:
    async with both(infra, rewards_db, points_db, unique) as (rewards, points):
        async with points.consumer():
            await publish(
                infra.bootstrap_servers, rewards.rewards, [credit("lou", "gift-lou", 100, NOW)]
            )
            async with rewards.consumer():
                await _wait(
                    rewards, "SELECT available FROM customers WHERE customer_id = 'lou'", 100
                )
            await rewards.execute(
                "INSERT INTO catalogue_items (item_id, reward_code, title, points_cost,"
                " claimable_from, claimable_until, voucher_valid_days, total_stock)"
                " VALUES ('tea', 'tea', 'Tea', 40, :start, :end, 30, 3)",
                start=days_ago(1),
                end=NOW + timedelta(days=3),
            )
            async with RewardsUnitOfWork.begin(rewards.engine, lambda: NOW) as uow:
                claim = await request_claim(uow.configured(rewards.topics, 30), "lou", "tea")
            # Rewards is "down": only its outbox relay runs, so the debit is asked for and made.
            producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers)
            await producer.start()
            try:
                await OutboxRelay(rewards.engine, producer, service="rewards").relay_once()
            finally:
                await producer.stop()
            answers = await points.emitted(1)
            assert any(e.type == "points.debited" for e in answers), "the points were debited"
            assert (await points.account("lou")).balance.available == 60
            assert await rewards.scalar("SELECT state FROM catalogue_claims") == "requested"
            assert await rewards.scalar("SELECT count(*) FROM vouchers") == 0, "the crash window"
            async with rewards.consumer():  # the restart
                await _wait(rewards, "SELECT state FROM catalogue_claims", "issued")
            voucher = await rewards.scalar(
                "SELECT voucher_id FROM catalogue_claims WHERE claim_id = :c", c=claim.claim_id
            )
            assert (
                voucher is not None and await rewards.scalar("SELECT count(*) FROM vouchers") == 1
            )


async def _wait(stack: RewardsStack, sql: str, expected: object) -> None:
    async def reached() -> object:
        got = await stack.scalar(sql)
        return True if got == expected else f"got {got!r}"

    await wait_until(reached, timeout=30)


async def test_guarantee_claims_are_screened_judged_and_escalated(
    infra: Infra, rewards_db: str, unique: str
) -> None:
    async with rewards_stack(infra, rewards_db, unique) as stack:
        await publish(
            infra.bootstrap_servers,
            stack.purchases,
            [
                purchase("eva", "o-1", "50.00", at=days_ago(1)),
                purchase("eva", "o-old", "50.00", at=days_ago(9)),
            ],
        )
        async with stack.consumer():
            await stack.wait_handled(2)
        await ensure_topics(infra.bootstrap_servers, [stack.incidents], partitions=1)
        async with serving(stack, infra, workers=False) as client:

            def filing(order: str, minutes: str = "16") -> dict[str, Any]:
                return {
                    "merchant_id": RESTAURANT,
                    "order_id": order,
                    "promise_kind": "dish_wait_time",
                    "measured": {"value": minutes, "unit": "minutes"},
                    "order_amount": "50.00",
                    "currency": "EUR",
                }

            theirs = await client.post("/v1/customers/max/guarantee-claims", json=filing("o-1"))
            assert theirs.status_code == 201
            assert (theirs.json()["status"], theirs.json()["reason"]) == (
                "rejected",
                "order_of_another_customer",
            )
            late = await client.post("/v1/customers/eva/guarantee-claims", json=filing("o-old"))
            assert (late.json()["status"], late.json()["reason"]) == (
                "rejected",
                "claim_window_closed",
            )
            good = await client.post("/v1/customers/eva/guarantee-claims", json=filing("o-1"))
            assert good.json()["status"] == "in_review", good.text
            comp = await stack.rows(
                "SELECT vouchers, refund_minor, status FROM compensations ORDER BY tier"
            )
            assert [(list(c.vouchers), c.refund_minor, c.status) for c in comp] == [
                (["fruit-plate"], 0, "granted"),
                ([], 1000, "in_review"),
            ], "the customer's own word pays tier 1; tier 2 waits for an incident or a person"
            fetched = await client.get(f"/v1/guarantee-claims/{good.json()['claim_id']}")
            assert fetched.status_code == 200 and fetched.json()["status"] == "in_review"
            unknown = await client.post(
                "/v1/customers/eva/guarantee-claims", json=filing("o-unseen")
            )
            assert (
                unknown.json()["status"] == "in_review"
                and unknown.json()["reason"] == "order_unknown"
            )
            # Green channel: escalated once after 12 hours, overdue after 24.
            filed = NOW
            done = await run_due_jobs_once(
                stack.engine, stack.topics, filed + timedelta(hours=13), 100
            )
            again = await run_due_jobs_once(
                stack.engine, stack.topics, filed + timedelta(hours=14), 100
            )
            assert (done["claims_escalated"], again["claims_escalated"]) == (2, 0)
            reviews = (await client.get("/v1/admin/reviews")).json()["reviews"]
            assert len(reviews) == 1 and reviews[0]["review_reasons"] == ["self_reported"]
            approved = await client.post(
                f"/v1/admin/reviews/{reviews[0]['compensation_id']}/approve", json={"actor": "gm"}
            )
            assert approved.status_code == 200 and approved.json()["status"] == "granted"
            twice = await client.post(
                f"/v1/admin/reviews/{reviews[0]['compensation_id']}/approve", json={"actor": "gm"}
            )
            assert twice.status_code == 409
            approved_claim = await client.get(f"/v1/guarantee-claims/{good.json()['claim_id']}")
            assert approved_claim.json()["status"] == "granted"
            report = (await client.get("/v1/admin/reports/budgets")).json()
            spent = {m["merchant_id"]: m["refunded_minor"] for m in report["merchants"]}
            assert spent[RESTAURANT] == 1000
            assert (await client.get("/v1/customers/eva/guarantee-claims")).status_code == 405
        escalated = await stack.rows(
            "SELECT count(*) FROM outbox WHERE topic = :t", t=stack.incidents
        )
        assert escalated[0][0] == 3, "two claim.escalated and one compensation.escalated"
