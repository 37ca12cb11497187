"""Who shops where: the coalition's merchants and customers with their own rhythms.

Everything here is drawn from a seeded `random.Random`, one per customer (seeded with
the run's seed and the customer's number), so a customer's life does not change when
the population grows and the same seed always gives the same people.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class Rhythm(StrEnum):
    """How often a customer comes back (the mean gap between visits)."""

    WEEKLY = "weekly"
    MONTHLY = "monthly"
    OCCASIONAL = "occasional"

    @property
    def mean_gap(self) -> timedelta:
        return {"weekly": timedelta(days=7), "monthly": timedelta(days=30)}.get(
            self.value, timedelta(days=90)
        )


@dataclass(frozen=True)
class Promise:
    """A measured service promise (the rewards service decides what a breach earns)."""

    kind: str
    limit_minutes: int  # what is promised; beyond it is a breach
    incident_rate: float  # share of visits where the operations system reports a measurement
    breach_rate: float  # share of those measurements that miss the promise


@dataclass(frozen=True)
class Merchant:
    """One partner of the coalition."""

    merchant_id: str
    category: str
    store_ids: tuple[str, ...]
    basket_cents: tuple[int, int]  # typical order, low and high
    return_rate: float
    promise: Promise | None = None


COALITION: tuple[Merchant, ...] = (
    Merchant("m-grocer", "grocery", ("s-grocer-1", "s-grocer-2"), (2500, 9000), 0.06),
    Merchant("m-cafe", "coffee", ("s-cafe-1",), (350, 1400), 0.0),
    Merchant(
        "m-bistro",
        "restaurant",
        ("s-bistro-1",),
        (2200, 8500),
        0.01,
        Promise("dish_wait_time", 10, incident_rate=0.35, breach_rate=0.4),
    ),
    Merchant(
        "m-hotel",
        "hotel",
        ("s-hotel-1",),
        (12000, 42000),
        0.03,
        Promise("check_in_time", 3, incident_rate=0.5, breach_rate=0.3),
    ),
    Merchant("m-garage", "auto", ("s-garage-1",), (6000, 14000), 0.02),
)

# Which merchants suit which rhythm as a customer's home (where most visits go).
_HOMES = {
    Rhythm.WEEKLY: ("m-grocer", "m-cafe"),
    Rhythm.MONTHLY: ("m-bistro", "m-grocer", "m-garage"),
    Rhythm.OCCASIONAL: ("m-hotel", "m-garage", "m-bistro"),
}
_RHYTHM_SHARES = ((Rhythm.WEEKLY, 0.4), (Rhythm.MONTHLY, 0.35), (Rhythm.OCCASIONAL, 0.25))


@dataclass(frozen=True)
class Customer:
    """One member: when they join, how often they come, where, and whether they leave."""

    customer_id: str
    rhythm: Rhythm
    home: Merchant
    others: tuple[Merchant, ...]  # the rest of the coalition, visited now and then
    spend_scale: float  # this customer's baskets relative to the merchant's typical range
    joins_at: datetime
    stops_at: datetime | None  # None: keeps coming back until the end


def coalition(count: int) -> tuple[Merchant, ...]:
    """The first `count` partners (at least one, at most the whole coalition)."""
    if not 1 <= count <= len(COALITION):
        raise ValueError(f"merchants must be between 1 and {len(COALITION)}")
    return COALITION[:count]


def customer_rng(seed: int, number: int) -> random.Random:
    return random.Random(f"{seed}:customer:{number}")


def _rhythm(rng: random.Random) -> Rhythm:
    draw = rng.random()
    for rhythm, share in _RHYTHM_SHARES:
        if draw < share:
            return rhythm
        draw -= share
    return Rhythm.OCCASIONAL


def make_customer(
    number: int,
    rng: random.Random,
    merchants: tuple[Merchant, ...],
    start: datetime,
    end: datetime,
    churn_rate: float,
    prefix: str = "c-",
) -> Customer:
    """Draw one customer. Joins in the first third; churners stop in the second half."""
    rhythm = _rhythm(rng)
    suited = [m for m in merchants if m.merchant_id in _HOMES[rhythm]] or list(merchants)
    home = rng.choice(suited)
    span = end - start
    joins_at = start + span * rng.uniform(0, 1 / 3)
    stops_at = start + span * rng.uniform(0.5, 0.85) if rng.random() < churn_rate else None
    return Customer(
        customer_id=f"{prefix}{number:05d}",
        rhythm=rhythm,
        home=home,
        others=tuple(m for m in merchants if m is not home),
        spend_scale=rng.uniform(0.7, 1.3),
        joins_at=joins_at,
        stops_at=stops_at,
    )


def next_gap(rhythm: Rhythm, rng: random.Random) -> timedelta:
    """Time to the next visit: the rhythm's mean, +-30%, never under half a day."""
    mean = rhythm.mean_gap.total_seconds()
    seconds = max(rng.gauss(mean, mean * 0.3), 43_200.0)
    return timedelta(seconds=round(seconds))
