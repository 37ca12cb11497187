"""The point-of-sale simulator: a realistic, deterministic, time-ordered stream."""

from __future__ import annotations

import io
import itertools
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from statistics import median

import pytest

from shared.contracts.registry import decode_event, encode_event
from tooling.simulator.population import Rhythm
from tooling.simulator.runner import Pacing, Progress, ProgressDisplay, run_simulation
from tooling.simulator.stream import SimulatedEvent, SimulationConfig, generate, money, population

START = datetime(2025, 3, 1, tzinfo=UTC)
CONFIG = SimulationConfig(customers=120, days=365, seed=11, start=START)


@pytest.fixture(scope="module")
def events() -> list[SimulatedEvent]:
    return list(generate(CONFIG))


def test_same_seed_same_stream_other_seed_other_stream(events: list[SimulatedEvent]) -> None:
    again = list(generate(CONFIG))
    assert [encode_event(e.event) for e in again] == [encode_event(e.event) for e in events]
    other = list(generate(SimulationConfig(customers=120, days=365, seed=12, start=START)))
    assert {e.event.event_id for e in other}.isdisjoint({e.event.event_id for e in events})


def test_every_event_passes_the_contracts_and_time_only_moves_forward(
    events: list[SimulatedEvent],
) -> None:
    times = [e.occurred_at for e in events]
    assert times == sorted(times), "consumers must see event time advance"
    assert times[0] >= START and times[-1] <= CONFIG.end
    for simulated in events:
        assert decode_event(encode_event(simulated.event)) == simulated.event
        assert simulated.occurred_at.tzinfo is not None


def test_customers_keep_their_own_rhythm(events: list[SimulatedEvent]) -> None:
    visits: dict[str, list[datetime]] = defaultdict(list)
    for e in events:
        if e.event.type == "purchase.completed":
            visits[e.event.customer_id].append(e.occurred_at)
    rhythms = {c.customer_id: c.rhythm for c in population(CONFIG)}
    gaps: dict[Rhythm, list[float]] = defaultdict(list)
    for customer, times in visits.items():
        gaps[rhythms[customer]] += [
            (b - a).total_seconds() / 86_400 for a, b in itertools.pairwise(times)
        ]
    assert 5 <= median(gaps[Rhythm.WEEKLY]) <= 9
    assert 22 <= median(gaps[Rhythm.MONTHLY]) <= 38
    assert 60 <= median(gaps[Rhythm.OCCASIONAL]) <= 120


def test_the_coalition_is_shared_and_some_customers_stop_coming(
    events: list[SimulatedEvent],
) -> None:
    merchants_of: dict[str, set[str]] = defaultdict(set)
    last_visit: dict[str, datetime] = {}
    for e in events:
        if e.event.type == "purchase.completed":
            merchants_of[e.event.customer_id].add(e.event.data.merchant_id)
            last_visit[e.event.customer_id] = e.occurred_at
    assert len({m for ms in merchants_of.values() for m in ms}) == 5
    assert sum(len(ms) > 1 for ms in merchants_of.values()) > 20, "customers earn across partners"
    churners = [c for c in population(CONFIG) if c.stops_at is not None]
    assert 5 <= len(churners) <= 40
    for churner in churners:
        assert churner.stops_at is not None
        assert last_visit[churner.customer_id] < churner.stops_at
    assert any(CONFIG.end - t > timedelta(days=60) for t in last_visit.values())


def test_returns_refund_part_of_an_earlier_order_of_the_same_customer(
    events: list[SimulatedEvent],
) -> None:
    orders = {}
    returns = 0
    for e in events:
        data = e.event.data
        if e.event.type == "purchase.completed":
            orders[data.order_id] = (e.event.customer_id, data.amount, e.occurred_at)
        elif e.event.type == "purchase.returned":
            returns += 1
            customer, amount, bought_at = orders[data.order_id]
            assert customer == e.event.customer_id and bought_at < e.occurred_at
            assert 0 < data.refunded_amount <= amount
    assert returns > 10


def test_incidents_measure_promises_and_some_breach_them(events: list[SimulatedEvent]) -> None:
    dish = [
        e.event.data
        for e in events
        if e.event.type == "service.incident" and e.event.data.promise_kind == "dish_wait_time"
    ]
    assert dish and all(d.measured.unit == "minutes" for d in dish)
    breached = [d for d in dish if d.measured.value > 10]
    assert 0 < len(breached) < len(dish), "some incidents keep the promise, some miss it"
    assert all(
        e.topic == "ops.service-incidents" for e in events if e.event.type == "service.incident"
    )


def test_money_is_written_from_integer_cents() -> None:
    assert money(5) == "0.05" and money(123456) == "1234.56"


class _FakeSender:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    async def send(self, topic: str, value: bytes, key: bytes) -> None:
        self.sent.append((topic, key))


async def test_a_simulated_year_is_paced_into_a_minute_of_wall_time() -> None:
    config = SimulationConfig(customers=10, days=365, seed=3, start=START)
    stream = list(generate(config))
    now = [0.0]
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    sender = _FakeSender()
    speed = 365 * 86_400 / 60
    output = io.StringIO()
    progress = await run_simulation(
        stream,
        sender,
        Pacing(START, speed),
        Progress(total=len(stream)),
        ProgressDisplay(output),
        clock=lambda: now[0],
        sleep=sleep,
    )
    assert progress.sent == len(stream) == len(sender.sent)
    assert [key.decode() for _, key in sender.sent] == [e.event.customer_id for e in stream]
    last_due = (stream[-1].occurred_at - START).total_seconds() / speed
    assert now[0] == pytest.approx(last_due) and now[0] <= 60
    final = output.getvalue().splitlines()[-1]
    assert "100.0%" in final and f"{len(stream)} events" in final


def test_no_pacing_sends_at_once() -> None:
    assert Pacing(START, 0).due_after(START + timedelta(days=100)) == 0.0
    assert Pacing(START, 86_400).due_after(START + timedelta(days=2)) == 2.0
