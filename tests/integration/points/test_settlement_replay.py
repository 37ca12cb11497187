"""The settlement property through the real consumer, PostgreSQL and job: a random
interleaving of purchases, returns (naming lines or not) and clock jumps for one customer,
published to Kafka and settled by `settle_due_orders`, leaves the books exactly where the
in-memory accounting and the oracle of the unit property test say."""

from __future__ import annotations

import random
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from services.points.domain.book import ReturnRecord
from services.points.rules.repository import RuleRepository
from services.points.settlement.service import settle_due_orders
from shared.contracts.points import PointsSettled
from shared.contracts.pos import PurchaseCompleted
from tests.integration.points.helpers import PointsStack, points_stack
from tests.support.counting import publish
from tests.support.infra import Infra
from tests.unit.points.test_settlement_properties import KINDS, RULES, World, run

pytestmark = pytest.mark.integration


def random_operations(seed: int, count: int) -> list[Any]:
    rng = random.Random(seed)
    prices = [98, 1_000, 5_000, 30_000, 30_000]
    ops: list[Any] = []
    for _ in range(count):
        kind = rng.choice(["buy", "buy", "buy", "back", "jump"])
        if kind == "buy":
            lines = [
                (rng.choice(sorted(KINDS)), rng.randint(1, 3), rng.choice(prices))
                for _ in range(rng.randint(1, 3))
            ]
            ops.append(("buy", lines))
        elif kind == "jump":
            ops.append(("jump", rng.randint(0, 10)))
        else:
            ops.append(
                (
                    rng.choice(["full", "part"]),
                    rng.randint(0, 50),
                    rng.random() < 0.5,
                    rng.randint(0, 10_000),
                )
            )
    return ops


def _return_event(record: ReturnRecord) -> dict[str, Any]:
    data: dict[str, Any] = {
        "return_id": record.return_id,
        "order_id": record.order_id,
        "merchant_id": record.merchant_id,
        "refunded_amount": f"{record.refunded_minor / 100:.2f}",
        "currency": "EUR",
    }
    if record.items:
        data["items"] = [{"sku": i.sku, "quantity": i.quantity} for i in record.items]
    return {
        "event_id": str(uuid.uuid4()),
        "type": "purchase.returned",
        "version": 1,
        "occurred_at": record.occurred_at.isoformat(),
        "source": "pos",
        "customer_id": record.customer_id,
        "data": data,
    }


def _purchase_json(event: PurchaseCompleted) -> dict[str, Any]:
    return event.model_dump(mode="json")


async def _replay(stack: PointsStack, infra: Infra, world: World) -> int:
    pending: list[dict[str, Any]] = []
    published = 0
    for step, item in world.script:
        if step == "purchase":
            pending.append(_purchase_json(item))
        elif step == "return":
            pending.append(_return_event(item))
        else:
            if pending:
                await publish(infra.bootstrap_servers, stack.inbound, pending)
                published += len(pending)
                await stack.wait_handled(published)
                pending = []
            await settle_due_orders(stack.engine, item, points_topic=stack.outbound)
    return published


@pytest.mark.parametrize("seed", [11, 29])
async def test_random_interleavings_through_the_consumer_match_the_oracle(
    infra: Infra, points_db: str, unique: str, seed: int
) -> None:
    world = World()
    run(world, random_operations(seed, 45))  # in memory, checked by the oracle (11: Gold)
    settled_orders = sum(o.settled for o in world.orders)
    assert world.orders and settled_orders == len(world.orders)
    async with points_stack(infra, points_db, unique) as stack:
        async with stack.engine.begin() as conn:
            await RuleRepository(conn).add(RULES, created_by="test")
        async with stack.consumer():
            published = await _replay(stack, infra, world)
            out = await stack.emitted(published)
        row = await stack.scalar(
            "SELECT ROW(tier, settled_points, settled_purchase_count, purchase_count,"
            " lifetime_earned)::text FROM accounts WHERE customer_id = 'cus'"
        )
        dead = await stack.scalar("SELECT count(*) FROM dead_letters")
        assert dead == 0, await stack.scalar(
            "SELECT string_agg(error_code || ': ' || error_message, '; ') FROM dead_letters"
        )
        account = world.account
        expected = (
            f"({account.tier.value},{account.settled_points},{account.settled_purchase_count},"
            f"{account.purchase_count},{account.lifetime_earned})"
        )
        assert row == expected, "the database and the in-memory books disagree"
        reversed_by_order = {
            o.order_id: world.stored(o).earning.reversed_points for o in world.orders
        }
        async with stack.engine.connect() as conn:
            stored: dict[str, int] = dict(
                (
                    await conn.execute(
                        sa.text("SELECT order_id, reversed_points FROM order_earnings")
                    )
                ).all()
            )
        assert stored == reversed_by_order
        settled = [e for e in out if isinstance(e, PointsSettled)]
        assert sorted(e.data.order_id for e in settled) == sorted(reversed_by_order)
        await stack.sound("cus")
