"""Accrual and credits through Kafka: dead letters with the reason, credits applied once,
and a replay of the whole topic that changes nothing."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest

from services.points.domain.earning import EarningRuleSet
from services.points.domain.programme import ProgrammeRules
from services.points.rules.repository import RuleRepository
from shared.contracts.points import PointsAccrued, PointsCredited
from tests.integration.points.helpers import (
    PointsStack,
    credit,
    days_ago,
    points_stack,
    purchase,
    returned,
)
from tests.support.counting import publish
from tests.support.dlq import headers, read_topic
from tests.support.infra import Infra

pytestmark = pytest.mark.integration


async def test_unknown_currency_is_dead_lettered_with_the_reason(
    infra: Infra, points_db: str, unique: str
) -> None:
    async with points_stack(infra, points_db, unique) as stack:
        dollars = purchase("cal", "o-usd", "80.00", days_ago(1), currency="USD")
        events = [
            purchase("cal", "o-1", "25.00", days_ago(2)),
            dollars,
            purchase("cal", "o-2", "10.00", days_ago(1)),
        ]
        async with stack.consumer():
            await publish(infra.bootstrap_servers, stack.inbound, events)
            await stack.wait_handled(3)
            dead = await read_topic(infra.bootstrap_servers, stack.dlq, expected=1)
        assert len(dead) == 1, "only the purchase in an unknown currency is dead-lettered"
        meta = headers(dead[0])
        assert meta["dlq.error.code"] == "unknown_currency"
        assert "USD" in meta["dlq.error.message"], "the reason names the currency"
        assert orjson.loads(dead[0].value or b"")["event_id"] == dollars["event_id"]
        account = await stack.account("cal")
        assert account.balance.pending == 35, "the purchases around it earn their points"
        assert account.purchase_count == 2, "the dead-lettered purchase is not counted"
        await stack.sound("cal")


async def test_a_credit_is_applied_once(infra: Infra, points_db: str, unique: str) -> None:
    async with points_stack(infra, points_db, unique) as stack:
        first = credit("dee", "credit-1", 40, days_ago(1))
        same_credit_new_event = credit("dee", "credit-1", 40, days_ago(1))
        conflicting = credit("dee", "credit-1", 400, days_ago(1))
        messages = [first, first, same_credit_new_event, conflicting]
        async with stack.consumer():
            await publish(infra.bootstrap_servers, stack.credits, messages)
            await stack.wait_handled(3)  # the exact copy is a duplicate, not handled twice
            out = await stack.emitted(1)
            dead = await read_topic(infra.bootstrap_servers, stack.dlq, expected=1)
        account = await stack.account("dee")
        assert account.balance.available == 40, "a credit is available at once, and only once"
        assert account.balance.pending == 0
        assert account.lifetime_earned == 40
        credits = [e for e in out if isinstance(e, PointsCredited)]
        assert [(e.data.credit_id, e.data.points) for e in credits] == [("credit-1", 40)]
        assert credits[0].data.available == 40
        assert [headers(r)["dlq.error.code"] for r in dead] == ["credit_conflict"], (
            "the same credit id with other points must be dead-lettered, not applied"
        )
        await stack.sound("dee")


async def _books(stack: PointsStack, customers: list[str]) -> dict[str, object]:
    books: dict[str, object] = {}
    for customer in customers:
        view = await stack.account(customer, days_ago(0))
        books[customer] = (view.balance, view.lifetime_earned, view.purchase_count, view.tier)
    wanted = {"customers": customers}
    books["ledger"] = await stack.scalar(
        "SELECT count(*) || ' rows, sum ' || sum(points) FROM ledger"
        " WHERE customer_id = ANY(:customers)",
        **wanted,
    )
    books["lots"] = await stack.scalar(
        "SELECT count(*) || ' lots, remaining ' || sum(remaining) FROM lots"
        " WHERE customer_id = ANY(:customers)",
        **wanted,
    )
    return books


async def test_replaying_the_whole_topic_changes_no_balance(
    infra: Infra, points_db: str, unique: str
) -> None:
    async with points_stack(infra, points_db, unique) as stack:
        customers = ["eve", "fay", "gus"]
        sales = [
            purchase(c, f"o-{c}-{n}", f"{20 + 7 * n}.50", days_ago(30 - n))
            for n in range(8)
            for c in customers
        ]
        refunds = [returned(c, f"o-{c}-3", f"r-{c}", "10.00", days_ago(5)) for c in customers]
        early = returned("gus", "o-gus-late", "r-late", "5.00", days_ago(4))
        late = purchase("gus", "o-gus-late", "50.00", days_ago(4.5))
        everything = [*sales, *refunds, early, late]
        gifts = [credit(c, f"gift-{c}", 15, days_ago(3)) for c in customers]
        async with stack.consumer():
            await publish(infra.bootstrap_servers, stack.inbound, everything)
            await publish(infra.bootstrap_servers, stack.credits, gifts)
            await stack.wait_handled(len(everything) + len(gifts))
            emitted = len(await stack.emitted(len(sales) + len(refunds) + 2 + len(gifts)))
        before = await _books(stack, customers)
        # Replay: a new consumer group reads both topics from the start, and every message
        # is published a second time as well.
        await publish(infra.bootstrap_servers, stack.inbound, everything)
        await publish(infra.bootstrap_servers, stack.credits, gifts)
        marker = purchase("zed", "o-marker", "1.00", days_ago(0))
        await publish(infra.bootstrap_servers, stack.inbound, [marker])
        async with stack.consumer(group=f"{stack.group}-replay"):
            await stack.wait_handled(len(everything) + len(gifts) + 1)
            after_replay = await stack.emitted(emitted + 1)
        assert await _books(stack, customers) == before, "a replay changed somebody's books"
        assert len(after_replay) == emitted + 1, "a replay must not publish events again"
        assert isinstance(after_replay[-1], PointsAccrued)
        for customer in customers:
            await stack.sound(customer)


async def test_rules_in_force_at_the_purchase_apply_with_the_daily_cap(
    infra: Infra, points_db: str, unique: str
) -> None:
    async with points_stack(infra, points_db, unique) as stack:
        morning = days_ago(2).replace(hour=9, minute=0, second=0)
        capped = EarningRuleSet(effective_from=morning - timedelta(days=1), daily_cap_points=150)
        async with stack.engine.begin() as conn:
            await RuleRepository(conn).add(ProgrammeRules(earning=capped), created_by="test")
        sales = [
            purchase("ned", f"o-{n}", "100.00", morning + timedelta(hours=n)) for n in range(3)
        ]
        before_rule = purchase("ned", "o-old", "100.00", morning - timedelta(days=3))
        async with stack.consumer():
            await publish(infra.bootstrap_servers, stack.inbound, [*sales, before_rule])
            await stack.wait_handled(4)
            out = await stack.emitted(4)
        earned = {
            e.data.order_id: (e.data.points, e.data.capped)
            for e in out
            if isinstance(e, PointsAccrued)
        }
        assert earned == {
            "o-0": (100, False),
            "o-1": (50, True),
            "o-2": (0, True),
            "o-old": (100, False),
        }, "150 points a day at most under the new rules; an older purchase keeps the old rules"
        assert (await stack.account("ned")).purchase_count == 4, "a capped purchase still counts"
        await stack.sound("ned")
