"""The balance read sums quiet lots and plain orders in SQL (`StoredBooks`) and leaves the
rest to the domain's rules: its `AccountView` must equal the one those rules give over every
live lot and every order of the tier window, whatever the lots' and orders' dates around
NOW, the end of the expiring-soon window and the start of the tier window.

The books are written straight into the tables, so a lot or an order can sit exactly on
every boundary, one microsecond before it and one after; the expected view is computed
here, from rows read with plain statements, with `balance_at`, `qualifying_activity` and
`progress_to_next_tier` only.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

import asyncpg
import pytest

from services.points.db import lines_from_json, returned_from_json
from services.points.domain.balances import EXPIRING_SOON_WINDOW, balance_at
from services.points.domain.ledger import EntryKind
from services.points.domain.lots import Lot
from services.points.domain.moments import add_months
from services.points.domain.programme import RuleBook
from services.points.domain.returns import is_fully_returned
from services.points.domain.tiers import (
    Tier,
    progress_to_next_tier,
    qualifying_activity,
    qualifying_purchase,
)
from services.points.ledger.service import AccountView, account_view
from services.points.rules.repository import RuleRepository
from shared.db import asyncpg_dsn, create_engine, driver_connection

pytestmark = pytest.mark.integration

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TICK = timedelta(microseconds=1)
SOON = NOW + EXPIRING_SOON_WINDOW
CUSTOMERS = 240


def _around(*moments: datetime) -> list[datetime]:
    return [m + d for m in moments for d in (-TICK, timedelta(0), TICK)]


def _lot_rows(rng: random.Random, customer: str) -> list[tuple[Any, ...]]:
    rows = []
    for _ in range(rng.randrange(0, 7)):
        expires = rng.choice([*_around(NOW, SOON), NOW + timedelta(days=200), NOW - timedelta(9)])
        pending = min(expires, rng.choice([*_around(NOW), NOW - timedelta(3), NOW + timedelta(3)]))
        earned = pending - timedelta(days=rng.choice([0, 14]))
        points = rng.randrange(1, 500)
        redeemed = rng.choice([0, 0, rng.randrange(0, points + 1)])
        clawed = rng.choice([0, rng.randrange(0, points - redeemed + 1)])
        expired = rng.choice([0, points - redeemed - clawed])
        source = rng.choice([EntryKind.ACCRUAL, EntryKind.CREDIT]).value
        merchant = rng.choice(["grocer", None])
        counters = (redeemed, clawed, expired)
        dates = (earned, pending, expires)
        rows.append((uuid.uuid4(), customer, source, points, *counters, *dates, merchant, "ref"))
    return rows


def _order_rows(rng: random.Random, customer: str, window_start: datetime) -> list[tuple[Any, ...]]:
    rows = []
    for _ in range(rng.randrange(0, 8)):
        occurred = rng.choice(
            [*_around(window_start, NOW), NOW - timedelta(days=40), NOW + timedelta(days=2)]
        )
        settles = rng.choice([occurred, *_around(NOW), occurred + timedelta(days=14)])
        amount = rng.choice([0, 1, 2500, 9999])
        spend = rng.choice([0, amount, amount * 3 // 2, 700])  # 700 of an amount of 0 too
        refunded = rng.choice([0, 0, 0, amount // 2, amount, amount + 1])
        returned = rng.choice([None, None, "null", '["0"]', f'["{Fraction(amount, 3)}"]'])
        if returned is not None and returned != "null":
            returned = rng.choice([returned, f'["{amount}"]'])
        lines = None
        if rng.random() < 0.3 and returned in (None, "null"):
            lines = (
                f'[{{"sku": "a", "weight": "1", "quantity": 1, "unit_price_minor": {amount}}},'
                ' {"sku": "b", "weight": "3/2", "quantity": 2, "unit_price_minor": 5}]'
            )
        order = (f"order-{uuid.uuid4()}", customer, "grocer", uuid.uuid4(), occurred, "EUR")
        rows.append((*order, amount, spend, 0, refunded, lines, returned, settles))
    return rows


async def _seed(conn: asyncpg.Connection, window_start: datetime) -> list[str]:
    rng = random.Random(20260301)
    customers = [f"cust-{number}" for number in range(CUSTOMERS)]
    for customer in customers:
        await conn.execute(
            "INSERT INTO accounts (customer_id, tier, debt, ledger_balance, lifetime_earned,"
            " purchase_count) VALUES ($1, $2, $3, 0, 0, 0)",
            customer,
            rng.choice(list(Tier)).value,
            rng.choice([0, 0, 0, 120]),
        )
        await conn.executemany(
            "INSERT INTO lots (lot_id, customer_id, source, points, redeemed, clawed_back,"
            " expired, earned_at, pending_until, expires_at, merchant_id, reference)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            _lot_rows(rng, customer),
        )
        await conn.executemany(
            "INSERT INTO order_earnings (order_id, customer_id, merchant_id, event_id,"
            " occurred_at, currency, amount_minor, spend_minor, points, refunded_minor,"
            " lines, returned, settles_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb, $12::jsonb, $13)",
            _order_rows(rng, customer, window_start),
        )
    return customers


async def _by_the_rules(
    conn: asyncpg.Connection, customer: str, book: RuleBook, window_start: datetime
) -> AccountView:
    """The view from every live lot and every order after `window_start`, by the domain's
    rules alone."""
    account = await conn.fetchrow("SELECT * FROM accounts WHERE customer_id = $1", customer)
    lots = [
        Lot(
            str(r["lot_id"]),
            EntryKind(r["source"]),
            r["points"],
            r["earned_at"],
            r["pending_until"],
            r["expires_at"],
            r["merchant_id"],
            r["reference"],
            r["redeemed"],
            r["clawed_back"],
            r["expired"],
        )
        for r in await conn.fetch(
            "SELECT * FROM lots WHERE customer_id = $1 AND remaining > 0", customer
        )
    ]
    orders = await conn.fetch(
        "SELECT *, lines::text AS lines_text, returned::text AS returned_text"
        " FROM order_earnings WHERE customer_id = $1 AND occurred_at > $2",
        customer,
        window_start,
    )
    purchases = [
        qualifying_purchase(
            o["order_id"],
            o["occurred_at"],
            o["spend_minor"],
            o["amount_minor"],
            o["refunded_minor"],
            settles_at=o["settles_at"],
            fully_returned=is_fully_returned(
                o["amount_minor"],
                o["refunded_minor"],
                lines_from_json(o["lines_text"]),
                returned_from_json(o["returned_text"]),
            ),
        )
        for o in orders
    ]
    policy = book.in_force(NOW).tiers
    tier = Tier(account["tier"])
    return AccountView(
        customer_id=customer,
        balance=balance_at(lots, NOW, account["debt"]),
        tier=tier,
        lifetime_earned=account["lifetime_earned"],
        purchase_count=account["purchase_count"],
        first_purchase_at=account["first_purchase_at"],
        ledger_balance=account["ledger_balance"],
        progress=progress_to_next_tier(tier, qualifying_activity(purchases, NOW, policy), policy),
    )


async def test_the_summed_read_equals_the_rules_over_every_lot_and_order(points_db: str) -> None:
    engine = create_engine(points_db, pool_size=1)
    try:
        async with engine.connect() as connection:
            book = await RuleRepository(connection).book()
    finally:
        await engine.dispose()
    window_start = add_months(NOW, -book.in_force(NOW).tiers.window_months)
    conn = await asyncpg.connect(asyncpg_dsn(points_db))
    try:
        customers = await _seed(conn, window_start)
        summed = quiet = plain = 0
        for customer in customers:
            view = await account_view(conn, customer, NOW, book)
            assert view == await _by_the_rules(conn, customer, book, window_start), customer
            summed += 1
        # The seed reaches every branch: quiet lots and plain orders summed in SQL, and
        # lots and orders on each side of them left to the rules.
        quiet = await conn.fetchval(
            "SELECT count(*) FROM lots WHERE remaining > 0 AND pending_until <= $1"
            " AND expires_at > $2",
            NOW,
            SOON,
        )
        plain = await conn.fetchval(
            "SELECT count(*) FROM order_earnings WHERE occurred_at > $1 AND occurred_at <= $2"
            " AND settles_at <= $2 AND refunded_minor = 0 AND returned IS NULL"
            " AND amount_minor > 0",
            window_start,
            NOW,
        )
    finally:
        await conn.close()
    assert summed == CUSTOMERS
    assert quiet > 20 and plain > 20, (quiet, plain)


async def test_an_unknown_customer_has_no_view(points_db: str) -> None:
    engine = create_engine(points_db, pool_size=1)
    try:
        async with engine.connect() as connection:
            book = await RuleRepository(connection).book()
            assert (
                await account_view(await driver_connection(connection), "nobody", NOW, book) is None
            )
    finally:
        await engine.dispose()
