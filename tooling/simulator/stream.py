"""The point-of-sale stream: purchases, returns and service incidents in event-time order.

`generate(config)` is pure and deterministic: the same config (seed and start included)
gives the same events, ids and all. Each customer's events are drawn from that customer's
own random stream, then every customer's stream is merged by `occurred_at`, so a consumer
sees time move forward the way it would in production.

Money is built in integer cents and written as decimal strings; every event is validated
by its contract model on the way out.
"""

from __future__ import annotations

import heapq
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.contracts.envelope import EventEnvelope
from shared.contracts.pos import PurchaseCompleted, PurchaseReturned, ServiceIncident
from shared.contracts.topics import Topics
from tooling.simulator.population import (
    Customer,
    Merchant,
    coalition,
    customer_rng,
    make_customer,
    next_gap,
)

SOURCE = "pos-simulator"
CURRENCY = "EUR"


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate. `start` must be timezone-aware."""

    customers: int = 100
    merchants: int = 5
    days: int = 365
    seed: int = 1
    start: datetime = field(
        default_factory=lambda: datetime(2025, 1, 1, tzinfo=UTC)  # tests pin it anyway
    )
    churn_rate: float = 0.15
    other_merchant_rate: float = 0.2
    customer_prefix: str = "c-"

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise ValueError("the simulation start must be timezone-aware")
        if self.customers < 1 or self.days < 1:
            raise ValueError("need at least one customer and one day")
        if not 0 <= self.churn_rate <= 1 or not 0 <= self.other_merchant_rate <= 1:
            raise ValueError("rates are shares between 0 and 1")

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=self.days)


@dataclass(frozen=True)
class SimulatedEvent:
    """An event and the topic it goes to."""

    topic: str
    event: EventEnvelope

    @property
    def occurred_at(self) -> datetime:
        return self.event.occurred_at


def money(cents: int) -> str:
    """Integer cents as a decimal string ("12.05")."""
    return f"{cents // 100}.{cents % 100:02d}"


def _event_id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _envelope(
    rng: random.Random, kind: str, at: datetime, customer: Customer, data: dict[str, Any]
) -> dict[str, Any]:
    return {
        "event_id": _event_id(rng),
        "type": kind,
        "version": 1,
        "occurred_at": at.replace(microsecond=0).isoformat(),
        "source": SOURCE,
        "customer_id": customer.customer_id,
        "data": data,
    }


def _items(rng: random.Random, merchant: Merchant, scale: float) -> list[dict[str, Any]]:
    low, high = merchant.basket_cents
    target = round(rng.uniform(low, high) * scale)
    count = rng.randint(1, 3)
    prices = [max(target // count + rng.randint(-50, 50), 50) for _ in range(count)]
    return [
        {
            "sku": f"{merchant.category}-{rng.randint(1, 40):03d}",
            "category": merchant.category,
            "quantity": 1,
            "unit_price": money(price),
        }
        for price in prices
    ]


def _cents(text: str) -> int:
    whole, _, fraction = text.partition(".")
    return int(whole) * 100 + int(fraction or 0)


@dataclass
class _Visit:
    """What one visit produced, so the caller can add its returns and incidents."""

    order_id: str
    merchant: Merchant
    items: list[dict[str, Any]]
    amount_cents: int


def _purchase(
    rng: random.Random, config: SimulationConfig, customer: Customer, at: datetime, number: int
) -> tuple[SimulatedEvent, _Visit]:
    visit_other = customer.others and rng.random() < config.other_merchant_rate
    merchant = rng.choice(customer.others) if visit_other else customer.home
    items = _items(rng, merchant, customer.spend_scale)
    amount = sum(_cents(i["unit_price"]) * i["quantity"] for i in items)
    order_id = f"o-{config.seed}-{customer.customer_id}-{number}"
    data = {
        "order_id": order_id,
        "merchant_id": merchant.merchant_id,
        "store_id": rng.choice(merchant.store_ids),
        "amount": money(amount),
        "currency": CURRENCY,
        "items": items,
        "channel": "in_store",
    }
    event = PurchaseCompleted.model_validate(
        _envelope(rng, "purchase.completed", at, customer, data)
    )
    return SimulatedEvent(Topics.POS_PURCHASES, event), _Visit(order_id, merchant, items, amount)


def _return(rng: random.Random, customer: Customer, visit: _Visit, at: datetime) -> SimulatedEvent:
    item = rng.choice(visit.items)
    data = {
        "return_id": f"r-{visit.order_id}",
        "order_id": visit.order_id,
        "merchant_id": visit.merchant.merchant_id,
        "refunded_amount": item["unit_price"],
        "currency": CURRENCY,
        "items": [{"sku": item["sku"], "quantity": 1, "unit_price": item["unit_price"]}],
    }
    event = PurchaseReturned.model_validate(_envelope(rng, "purchase.returned", at, customer, data))
    return SimulatedEvent(Topics.POS_PURCHASES, event)


def _incident(
    rng: random.Random, customer: Customer, visit: _Visit, at: datetime
) -> SimulatedEvent | None:
    promise = visit.merchant.promise
    if promise is None or rng.random() >= promise.incident_rate:
        return None
    limit = promise.limit_minutes
    breached = rng.random() < promise.breach_rate
    minutes = rng.randint(limit + 1, limit * 2 + 5) if breached else rng.randint(1, limit)
    data = {
        "incident_id": f"i-{visit.order_id}",
        "merchant_id": visit.merchant.merchant_id,
        "promise_kind": promise.kind,
        "measured": {"value": minutes, "unit": "minutes"},
        "order_id": visit.order_id,
        "order_amount": money(visit.amount_cents),
        "currency": CURRENCY,
    }
    event = ServiceIncident.model_validate(_envelope(rng, "service.incident", at, customer, data))
    return SimulatedEvent(Topics.SERVICE_INCIDENTS, event)


def customer_events(
    config: SimulationConfig, customer: Customer, rng: random.Random
) -> list[SimulatedEvent]:
    """One customer's whole life in the simulation, in time order."""
    events: list[SimulatedEvent] = []
    last = config.end if customer.stops_at is None else min(customer.stops_at, config.end)
    at, number = customer.joins_at, 1
    while at < last:
        purchase, visit = _purchase(rng, config, customer, at, number)
        events.append(purchase)
        incident = _incident(rng, customer, visit, at + timedelta(minutes=rng.randint(20, 90)))
        if incident is not None:
            events.append(incident)
        returned_at = at + timedelta(days=rng.uniform(1, 10))
        if rng.random() < visit.merchant.return_rate and returned_at < config.end:
            events.append(_return(rng, customer, visit, returned_at))
        at, number = at + next_gap(customer.rhythm, rng), number + 1
    events.sort(key=lambda e: e.occurred_at)
    return events


def population(config: SimulationConfig) -> list[Customer]:
    merchants = coalition(config.merchants)
    return [
        make_customer(
            n,
            customer_rng(config.seed, n),
            merchants,
            config.start,
            config.end,
            config.churn_rate,
            config.customer_prefix,
        )
        for n in range(1, config.customers + 1)
    ]


def generate(config: SimulationConfig) -> Iterator[SimulatedEvent]:
    """Every customer's events, merged into one stream ordered by `occurred_at`."""
    streams = []
    for number, customer in enumerate(population(config), start=1):
        rng = random.Random(f"{config.seed}:events:{number}")
        streams.append(customer_events(config, customer, rng))
    yield from heapq.merge(*streams, key=lambda e: e.occurred_at)
