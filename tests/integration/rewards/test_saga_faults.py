"""The catalogue saga under faults, with the points service running for real:

- a real rewards process (`python -m services.rewards`) is SIGKILLed after it asked for the
  debit and before any answer came back; the points service debits while rewards is dead;
  a new process finishes the claim with exactly one voucher for exactly one debit;
- claims the points service does not answer in time are cancelled by the due-time job
  (clock injected) and their debit reversed: a late debit is given back, a late rejection
  settles the claim, and no points stay spent without a voucher."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.rewards.claims.service import request_claim
from services.rewards.invariants import invariant_violations
from services.rewards.jobs import run_due_jobs_once
from services.rewards.uow import RewardsUnitOfWork
from shared.auth import create_key
from tests.integration.points.helpers import PointsStack, credit, points_stack
from tests.integration.rewards.helpers import NOW, RewardsStack, days_ago, rewards_stack
from tests.support.counting import publish, wait_until
from tests.support.infra import Infra, free_port

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]

ITEM = (
    "INSERT INTO catalogue_items (item_id, reward_code, title, points_cost, claimable_from,"
    " claimable_until, voucher_valid_days, total_stock) VALUES"
    " ('tea', 'tea', 'Tea', 40, :start, :end, 30, 3)"
)


@asynccontextmanager
async def both(
    infra: Infra, rewards_db: str, points_db: str, unique: str
) -> AsyncIterator[tuple[RewardsStack, PointsStack]]:
    async with (
        rewards_stack(infra, rewards_db, unique) as rewards,
        points_stack(infra, points_db, unique) as points,
    ):
        await rewards.execute(ITEM, start=days_ago(1), end=NOW + timedelta(days=3))
        yield rewards, points


async def _until(stack: RewardsStack, sql: str, expected: object, **params: Any) -> None:
    async def reached() -> object:
        got = await stack.scalar(sql, **params)
        return True if got == expected else f"{sql} -> {got!r}, waiting for {expected!r}"

    await wait_until(reached, timeout=60)


@contextmanager
def rewards_process(stack: RewardsStack, port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The rewards service as operators run it, in its own process, on `stack`."""
    env = {
        **os.environ,
        "REWARDS_DATABASE_URL": stack.db_url,
        "REWARDS_CONSUMER_GROUP": stack.group,
        "REWARDS_POINTS_TOPIC": stack.points_topic,
        "REWARDS_INCIDENTS_TOPIC": stack.incidents,
        "REWARDS_REWARDS_TOPIC": stack.rewards,
        "REWARDS_OPS_TOPIC": stack.incidents,
        "REWARDS_HTTP_PORT": str(port),
        "REWARDS_JOBS_INTERVAL_SECONDS": "3600",
        "KAFKA_BOOTSTRAP_SERVERS": stack.infra.bootstrap_servers,
    }
    with log.open("ab") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.rewards"], cwd=ROOT, env=env, stdout=sink, stderr=sink
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


async def _serving(client: httpx.AsyncClient, process: subprocess.Popen[bytes], log: Path) -> None:
    async def up() -> object:
        if process.poll() is not None:
            return f"the process exited ({process.returncode}): {log.read_text()[-2000:]}"
        try:
            return (await client.get("/healthz")).status_code == 200 or "not healthy yet"
        except httpx.TransportError as error:
            return f"not listening yet: {error}"

    await wait_until(up, timeout=60)


async def test_a_rewards_process_killed_between_debit_and_voucher_issues_it_once(
    infra: Infra, rewards_db: str, points_db: str, unique: str, tmp_path: Path
) -> None:
    log = tmp_path / "rewards.log"
    async with both(infra, rewards_db, points_db, unique) as (rewards, points):
        async with rewards.engine.begin() as conn:
            key = await create_key(conn, "test", ["admin"])
        port = free_port()
        headers = {"Authorization": f"Bearer {key.plaintext}"}
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=10) as client:
            with rewards_process(rewards, port, log) as victim:
                await _serving(client, victim, log)
                async with points.consumer():
                    await publish(
                        infra.bootstrap_servers, rewards.rewards, [credit("ivy", "gift", 100, NOW)]
                    )
                    await _until(rewards, "SELECT available FROM customers", 100)
                # Points is down: the claim is requested, and after ~2 s answered 202.
                claimed = await client.post("/v1/customers/ivy/claims", json={"item_id": "tea"})
                assert claimed.status_code == 202, claimed.text
                status_url = claimed.headers["location"]
                assert claimed.json()["state"] == "requested"
                await rewards.outbox_empty()  # the debit request has left rewards
                victim.send_signal(signal.SIGKILL)
                victim.wait(timeout=10)
            async with points.consumer():
                await wait_until(_balance(points, "ivy", 60), timeout=60)
                assert await rewards.scalar("SELECT count(*) FROM vouchers") == 0, (
                    "the crash window: points spent, no voucher yet"
                )
                with rewards_process(rewards, port, log) as survivor:
                    await _serving(client, survivor, log)
                    await _until(rewards, "SELECT state FROM catalogue_claims", "issued")
                    claim = (await client.get(status_url)).json()
                    assert claim["state"] == "issued" and claim["voucher"]["status"] == "active"
                    survivor.send_signal(signal.SIGTERM)
                    # uvicorn shuts down, then re-raises the signal it caught: -SIGTERM.
                    assert survivor.wait(timeout=30) in (0, -signal.SIGTERM)
                    assert "Application shutdown complete" in log.read_text()[-3000:]
            assert await rewards.scalar("SELECT count(*) FROM vouchers") == 1, "exactly one voucher"
            assert (await points.account("ivy")).balance.available == 60, "debited exactly once"
            async with rewards.engine.connect() as conn:
                assert await invariant_violations(conn) == []


def _balance(points: PointsStack, customer: str, expected: int) -> Callable[[], Awaitable[object]]:
    async def check() -> object:
        got = (await points.account(customer)).balance.available
        return True if got == expected else f"{customer} has {got} points, expected {expected}"

    return check


async def _claim(rewards: RewardsStack, customer: str) -> uuid.UUID:
    async with RewardsUnitOfWork.begin(rewards.engine, lambda: NOW) as uow:
        claim = await request_claim(uow.configured(rewards.topics, 30), customer, "tea")
    return uuid.UUID(str(claim.claim_id))


async def test_unanswered_claims_time_out_and_a_late_debit_is_given_back(
    infra: Infra, rewards_db: str, points_db: str, unique: str
) -> None:
    async with both(infra, rewards_db, points_db, unique) as (rewards, points):
        async with rewards.consumer():
            async with points.consumer():
                gifts = [credit("joe", "gift-joe", 100, NOW), credit("kit", "gift-kit", 10, NOW)]
                await publish(infra.bootstrap_servers, rewards.rewards, gifts)
                await _until(rewards, "SELECT sum(available) FROM customers", 110)
            # The points service is down. Kit's projection is stale (the service knows better).
            await rewards.execute("UPDATE customers SET available = 500 WHERE customer_id = 'kit'")
            paid, unpaid = await _claim(rewards, "joe"), await _claim(rewards, "kit")
            await rewards.outbox_empty()
            early = await run_due_jobs_once(
                rewards.engine, rewards.topics, NOW + timedelta(minutes=4), 100
            )
            assert early["claims_timed_out"] == 0, "within the timeout nothing is cancelled"
            late = NOW + timedelta(minutes=6)
            done = await run_due_jobs_once(rewards.engine, rewards.topics, late, 100)
            again = await run_due_jobs_once(rewards.engine, rewards.topics, late, 100)
            assert (done["claims_timed_out"], again["claims_timed_out"]) == (2, 0)
            states = await rewards.rows("SELECT state, reason FROM catalogue_claims")
            assert {tuple(s) for s in states} == {("cancelled", "points_timeout")}
            assert await rewards.scalar("SELECT units_claimed FROM catalogue_items") == 0, (
                "cancelled claims give their units back"
            )
            await rewards.outbox_empty()
            # Points comes back: it reads each debit request, then its reversal request.
            async with points.consumer():
                await _until(rewards, _STATE, "compensated", claim=paid)
                await _until(rewards, _STATE, "rejected", claim=unpaid)
                await wait_until(_balance(points, "joe", 100), timeout=30)
        assert await rewards.scalar("SELECT count(*) FROM vouchers") == 0, "no voucher was issued"
        assert (await points.account("kit")).balance.available == 10, "nothing taken from kit"
        sent = [e.type for e in await points.emitted(5) if e.customer_id == "joe"]
        assert sent.count("points.debited") == 1 and sent.count("points.debit_reversed") == 1, sent
        async with rewards.engine.connect() as conn:
            assert await invariant_violations(conn, late) == []


_STATE = "SELECT state FROM catalogue_claims WHERE claim_id = :claim"


async def test_a_debit_request_the_points_service_never_got_still_settles_the_claim(
    infra: Infra, rewards_db: str, points_db: str, unique: str
) -> None:
    """The debit request is lost before it leaves the rewards outbox (as if dead-lettered):
    the claim times out, its reversal reaches a points service that never debited, and the
    answer `not_debited` settles the claim instead of leaving it cancelled and unanswered."""
    async with both(infra, rewards_db, points_db, unique) as (rewards, points):
        async with rewards.consumer(), points.consumer():
            await publish(
                infra.bootstrap_servers, rewards.rewards, [credit("lea", "g-lea", 60, NOW)]
            )
            await _until(rewards, "SELECT available FROM customers WHERE customer_id = 'lea'", 60)
        claim = await _claim(rewards, "lea")  # no relay runs: the request waits in the outbox
        await rewards.execute("DELETE FROM outbox")  # ... and is lost
        late = NOW + timedelta(minutes=6)
        assert (await run_due_jobs_once(rewards.engine, rewards.topics, late, 10))[
            "claims_timed_out"
        ] == 1
        async with rewards.consumer(), points.consumer():
            await _until(rewards, _STATE, "rejected", claim=claim)
        answers = [e for e in await points.emitted(2) if e.type == "points.debit_rejected"]
        assert [(a.data.debit_id, a.data.reason, a.data.points) for a in answers] == [
            (str(claim), "not_debited", None)
        ]
        assert (await points.account("lea")).balance.available == 60, "nothing was taken"
        async with rewards.engine.connect() as conn:
            assert await invariant_violations(conn, late + timedelta(days=2)) == []
