"""Guarantee compensation through Kafka on the real broker and PostgreSQL: the projection,
the seeded dish-wait policy, top-ups that never pay twice, caps routing to manual review,
and replaying every topic changing nothing."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from tests.integration.rewards.helpers import (
    NOW,
    RESTAURANT,
    RewardsStack,
    accrued,
    days_ago,
    incident,
    purchase,
    rewards_stack,
    serving,
)
from tests.support.counting import publish
from tests.support.infra import Infra

pytestmark = pytest.mark.integration


async def test_projection_follows_points_snapshots(
    infra: Infra, rewards_db: str, unique: str
) -> None:
    async with rewards_stack(infra, rewards_db, unique) as stack:
        events = [
            accrued("ana", "o-1", days_ago(3), available=0, lifetime=40, purchases=1, first=True),
            accrued(
                "ana", "o-2", days_ago(1), available=40, lifetime=95, purchases=2, tier="silver"
            ),
        ]
        await publish(infra.bootstrap_servers, stack.points_topic, events)
        async with stack.consumer():
            await stack.wait_handled(2)
        row = (await stack.rows("SELECT * FROM customers WHERE customer_id = 'ana'"))[0]
        assert (row.available, row.lifetime_points, row.tier, row.purchase_count) == (
            40,
            95,
            "silver",
            2,
        ), "the projection holds the newest snapshot"
        assert row.first_purchase_at == days_ago(3), "the first purchase is remembered"
        orders = await stack.rows("SELECT order_id, merchant_id FROM customer_orders ORDER BY 1")
        assert [tuple(o) for o in orders] == [("o-1", RESTAURANT), ("o-2", RESTAURANT)]


async def test_dish_wait_escalation_tops_up_and_never_pays_twice(
    infra: Infra, rewards_db: str, unique: str
) -> None:
    async with rewards_stack(infra, rewards_db, unique) as stack:
        await stack.execute(  # caps far above this test's amounts: the tiers are under test
            "INSERT INTO merchant_limits (merchant_id, customer_refund_cap_minor) VALUES (:m, :c)",
            m=RESTAURANT,
            c=10**9,
        )
        await publish(infra.bootstrap_servers, stack.purchases, [purchase("bo", "o-9")])
        async with stack.consumer():
            await stack.wait_handled(1)  # the order is recorded before its incidents
            # 12 minutes: the fruit plate; 17: also 20% of 80.00; 25: double the order in
            # total; 12 again and 25 again: nothing more.
            for minutes in ("12", "17", "25", "12", "25"):
                await publish(
                    infra.bootstrap_servers, stack.incidents, [incident("bo", "o-9", minutes)]
                )
            await stack.wait_handled(6)
            await stack.outbox_empty()
        comps = await stack.rows(
            "SELECT tier, vouchers, refund_minor, status FROM compensations ORDER BY tier"
        )
        assert [(c.tier, list(c.vouchers), c.refund_minor, c.status) for c in comps] == [
            (1, ["fruit-plate"], 0, "granted"),
            (2, [], 1600, "granted"),
            (3, [], 14400, "granted"),
        ], "each tier paid once, the top-up only adds the difference"
        total = await stack.scalar("SELECT sum(refund_minor) FROM compensations")
        assert total == 16000, "over 20 minutes pays double the order amount in total, not more"
        vouchers = await stack.rows("SELECT reward_code, merchant_id FROM vouchers")
        assert [tuple(v) for v in vouchers] == [("fruit-plate", RESTAURANT)]
        events = await stack.emitted(7)
        kinds = Counter(e.type for e in events)
        assert kinds == {
            "reward.issued": 1,
            "compensation.granted": 3,
            "refund.instructed": 2,
        }, f"unexpected events: {kinds}"
        refunds = [e.data.amount for e in events if e.type == "refund.instructed"]
        assert [str(a) for a in refunds] == ["16.00", "144.00"]


async def test_a_claim_over_the_customer_cap_waits_for_manual_review(
    infra: Infra, rewards_db: str, unique: str
) -> None:
    async with rewards_stack(infra, rewards_db, unique) as stack:
        await stack.execute(
            "INSERT INTO merchant_limits (merchant_id, customer_breach_cap) VALUES (:m, 1)",
            m=RESTAURANT,
        )
        await publish(
            infra.bootstrap_servers,
            stack.purchases,
            [purchase("cy", "o-1"), purchase("cy", "o-2")],
        )
        async with stack.consumer():
            await stack.wait_handled(2)  # the orders are recorded before their incidents
            await publish(
                infra.bootstrap_servers,
                stack.incidents,
                [
                    incident("cy", "o-1", "11"),
                    incident("cy", "o-2", "16"),
                ],
            )
            await stack.wait_handled(4)
            await stack.outbox_empty()
        rows = await stack.rows(
            "SELECT order_id, status, review_reasons FROM compensations ORDER BY order_id"
        )
        assert [(r.order_id, r.status, list(r.review_reasons)) for r in rows] == [
            ("o-1", "granted", []),
            ("o-2", "in_review", ["customer_breach_cap"]),
        ], "the second breach in 30 days goes to a person, it is not dropped"
        assert await stack.scalar("SELECT count(*) FROM vouchers") == 1, "nothing paid yet for o-2"
        events = await stack.emitted(4)
        review = [e for e in events if e.type == "compensation.review_required"]
        assert len(review) == 1 and review[0].data.order_id == "o-2"


async def test_batches_of_incidents_pay_and_cap_as_one_by_one_would(
    infra: Infra, rewards_db: str, unique: str
) -> None:
    """Batches large enough to be written by COPY, the second capped by what the first
    granted (read back as one sum per customer): each breach is paid once, on the record,
    and every customer's ninth breach and later waits for a person."""
    customers = [f"k{n}" for n in range(16)]
    orders = [(customers[n % 16], f"o-{n}") for n in range(160)]  # 10 orders each
    async with rewards_stack(infra, rewards_db, unique) as stack:
        await stack.execute(
            "INSERT INTO merchant_limits (merchant_id, customer_refund_cap_minor,"
            " customer_breach_cap) VALUES (:m, :c, 8)",  # only the breach cap can hold
            m=RESTAURANT,
            c=10**9,
        )
        await publish(infra.bootstrap_servers, stack.purchases, [purchase(c, o) for c, o in orders])
        async with stack.consumer():
            await stack.wait_handled(160)
            reports = [incident(c, o, "17", amount="999.00") for c, o in orders]
            # 5 breaches per customer in each half; the second half reads what the first paid
            await stack.publish_in_batches(stack.incidents, [reports[:80], reports[80:]], 160)
            await stack.outbox_empty()
        rows = await stack.rows(
            "SELECT customer_id, order_id, tier, vouchers, refund_minor, status, review_reasons,"
            " voucher_value_minor, new_breach FROM compensations"
        )
        assert len(rows) == 160, "one compensation per breach"
        assert {(r.tier, tuple(r.vouchers), r.refund_minor, r.new_breach) for r in rows} == {
            (2, ("fruit-plate",), 16_00, True)
        }, "20% of the recorded 80.00, never of the 999.00 the incidents state"
        for customer in customers:
            mine = sorted(
                (r for r in rows if r.customer_id == customer),
                key=lambda r: int(r.order_id.split("-")[1]),
            )
            assert [r.status for r in mine] == ["granted"] * 8 + ["in_review"] * 2, [
                (r.order_id, r.status, list(r.review_reasons)) for r in mine
            ]
            assert [list(r.review_reasons) for r in mine[8:]] == [["customer_breach_cap"]] * 2
        breaches = await stack.rows("SELECT tier, refund_minor, vouchers FROM breaches")
        assert len(breaches) == 160
        assert {(b.tier, b.refund_minor, tuple(b.vouchers)) for b in breaches} == {
            (2, 16_00, ("fruit-plate",))
        }
        assert await stack.scalar("SELECT count(*) FROM vouchers") == 128, "granted ones only"


async def test_replaying_every_topic_changes_nothing(
    infra: Infra, rewards_db: str, unique: str
) -> None:
    async with rewards_stack(infra, rewards_db, unique) as stack:
        history = [
            accrued("di", "o-5", days_ago(2), available=10, lifetime=10, purchases=1, first=True),
        ]
        incidents = [incident("di", "o-5", "16"), incident("di", "o-5", "21", at=NOW)]
        purchases = [purchase("di", "o-5")]
        await publish(infra.bootstrap_servers, stack.points_topic, history)
        await publish(infra.bootstrap_servers, stack.purchases, purchases)
        await publish(infra.bootstrap_servers, stack.incidents, incidents)
        async with stack.consumer():
            await stack.wait_handled(4)
            await stack.outbox_empty()
        before = await _state(stack)
        sent_before = len(await stack.emitted(1))
        # Every message again, on the topics, and a brand-new group reading them all.
        await publish(infra.bootstrap_servers, stack.points_topic, history)
        await publish(infra.bootstrap_servers, stack.purchases, purchases)
        await publish(infra.bootstrap_servers, stack.incidents, incidents)
        async with stack.consumer(group=f"{stack.group}-replay") as replay:
            await stack.caught_up(replay)
        await stack.outbox_empty()
        assert await _state(stack) == before, "a replay must not change any state"
        assert len(await stack.emitted(sent_before)) == sent_before, "a replay emits nothing new"


async def _state(stack: RewardsStack) -> list[object]:
    queries = [
        "SELECT customer_id, available, lifetime_points, tier FROM customers ORDER BY 1",
        "SELECT breach_key, tier, refund_minor FROM breaches ORDER BY 1",
        "SELECT order_id, amount_minor, returned_minor FROM orders ORDER BY 1",
        "SELECT compensation_id, tier, refund_minor, status FROM compensations ORDER BY 1",
        "SELECT voucher_id, reward_code FROM vouchers ORDER BY 1",
    ]
    return [[tuple(r) for r in await stack.rows(q)] for q in queries]


async def test_incidents_and_claims_racing_for_one_cap_grant_exactly_the_cap(
    infra: Infra, rewards_db: str, unique: str
) -> None:
    """Ten incidents through the consumer (in batches) and ten claims over HTTP, at once, for
    one customer whose cap is three breaches in 30 days: exactly three are granted."""
    async with rewards_stack(infra, rewards_db, unique) as stack:
        await stack.execute(
            "INSERT INTO merchant_limits (merchant_id, customer_breach_cap) VALUES (:m, 3)",
            m=RESTAURANT,
        )
        orders = [f"o-{n}" for n in range(20)]
        await publish(
            infra.bootstrap_servers,
            stack.purchases,
            [purchase("zed", order, "30.00") for order in orders],
        )
        async with stack.consumer():
            await stack.wait_handled(len(orders))
            async with serving(stack, infra, workers=False) as client:

                async def claim(order: str) -> int:
                    body = {
                        "merchant_id": RESTAURANT,
                        "order_id": order,
                        "promise_kind": "dish_wait_time",
                        "measured": {"value": "11", "unit": "minutes"},
                        "order_amount": "30.00",
                        "currency": "EUR",
                    }
                    response = await client.post("/v1/customers/zed/guarantee-claims", json=body)
                    return response.status_code

                incidents = [incident("zed", order, "11") for order in orders[:10]]
                _, *codes = await asyncio.gather(
                    publish(infra.bootstrap_servers, stack.incidents, incidents),
                    *(claim(order) for order in orders[10:]),
                )
                assert codes == [201] * 10
                await stack.wait_handled(len(orders) + len(incidents))
        statuses = await stack.rows(
            "SELECT status, trigger, count(*) FROM compensations GROUP BY 1, 2 ORDER BY 1, 2"
        )
        by_status: Counter[str] = Counter()
        for status, _trigger, count in statuses:
            by_status[status] += count
        assert by_status == {"granted": 3, "in_review": 17}, f"the cap holds: {statuses}"
        assert await stack.scalar("SELECT count(*) FROM vouchers") == 3
        held = await stack.rows(
            "SELECT DISTINCT review_reasons FROM compensations WHERE status = 'in_review'"
        )
        assert [list(r.review_reasons) for r in held] == [["customer_breach_cap"]]
