"""`make demo`'s hands on the admin APIs: the programme before the year, people after it.

Before the simulated year: the programme of `programme.py` (PUTs, idempotent by nature) and
a few referrals (a referral code for an early member, given to a customer who joins late;
"already referred" on a second run is what idempotent looks like here).

After it, once the points service has caught up with the chosen customers, what people do
at the counters: catalogue claims (the points-for-voucher saga), a voucher redeemed, points
redeemed and one redemption cancelled, an administrator's adjustment. Every write carries an
id derived from the run's seed, so running the demo again changes nothing.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from tooling.cli_env import CommandError
from tooling.simulator.programme import (
    CATALOGUE,
    LIMITS,
    MILESTONE_RULES,
    POLICIES,
    REFERRAL_PROGRAMME,
    REFERRALS,
    REWARD_DEFINITIONS,
)
from tooling.simulator.stream import SimulatedEvent, SimulationConfig, population

SERVICES = ("points", "rewards", "alerts")
Say = Callable[[str], None]


@dataclass(frozen=True)
class AdminApi:
    """The three services' URLs and admin keys, and one client."""

    urls: Mapping[str, str]
    keys: Mapping[str, str | None]
    client: httpx.AsyncClient

    async def call(
        self,
        service: str,
        method: str,
        path: str,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        accept: Iterable[int] = (),
    ) -> tuple[int, Any]:
        key = self.keys.get(service)
        if not key:
            raise CommandError(
                f"no admin key for {service}: run `make run` first (it writes var/services.json)"
                f" or set {service.upper()}_ADMIN_KEY"
            )
        try:
            response = await self.client.request(
                method,
                self.urls[service] + path,
                json=body,
                headers={"Authorization": f"Bearer {key}", **(headers or {})},
            )
        except httpx.HTTPError as exc:
            raise CommandError(f"cannot reach {service} at {self.urls[service]}: {exc}") from exc
        document = response.json() if response.content else None
        if response.status_code >= 400 and response.status_code not in set(accept):
            raise CommandError(
                f"{method} {service}{path} answered {response.status_code}: {document}"
            )
        return response.status_code, document


async def seed_programme(api: AdminApi, say: Say) -> None:
    for code, definition in REWARD_DEFINITIONS.items():
        await api.call("rewards", "PUT", f"/v1/admin/reward-definitions/{code}", definition)
    for (merchant, kind), policy in POLICIES.items():
        await api.call("rewards", "PUT", f"/v1/admin/policies/{merchant}/{kind}", policy)
    for merchant, limits in LIMITS.items():
        await api.call("rewards", "PUT", f"/v1/admin/limits/{merchant}", limits)
    for item_id, item in CATALOGUE.items():
        await api.call("rewards", "PUT", f"/v1/admin/catalogue/{item_id}", item)
    for rule_key, rule in MILESTONE_RULES.items():
        await api.call("rewards", "PUT", f"/v1/admin/milestone-rules/{rule_key}", rule)
    await api.call("rewards", "PUT", "/v1/admin/referral-programme", REFERRAL_PROGRAMME)
    say(
        f"seeded the programme: {len(POLICIES)} guarantee policies, {len(LIMITS)} merchants' "
        f"caps, {len(CATALOGUE)} catalogue items, {len(MILESTONE_RULES)} milestone rules, "
        f"{len(REWARD_DEFINITIONS)} rewards, a referral programme"
    )


def referral_pairs(config: SimulationConfig) -> list[tuple[str, str]]:
    """(referrer, referee): the earliest joiners refer the latest ones."""
    people = sorted(population(config), key=lambda c: c.joins_at)
    count = min(REFERRALS, len(people) // 2)
    early, late = people[:count], people[len(people) - count :]
    return [(a.customer_id, b.customer_id) for a, b in zip(early, late, strict=True)]


async def link_referrals(api: AdminApi, config: SimulationConfig, say: Say) -> None:
    linked = 0
    for referrer, referee in referral_pairs(config):
        _, code = await api.call("rewards", "GET", f"/v1/customers/{referrer}/referral-code")
        status, answer = await api.call(
            "rewards",
            "POST",
            f"/v1/customers/{referee}/referral",
            {"code": code["referral_code"]},
            accept=(409, 422),
        )
        if status < 400:
            linked += 1
        elif "already" not in str(answer):
            raise CommandError(f"referral of {referee} by {referrer} refused: {answer}")
    say(f"referrals: {linked} linked now (the others were linked by an earlier run)")


def busiest_customers(events: Iterable[SimulatedEvent], count: int) -> dict[str, int]:
    """The customers with the most purchases in the stream, and how many each made."""
    purchases: Counter[str] = Counter(
        e.event.customer_id for e in events if e.event.type == "purchase.completed"
    )
    return dict(purchases.most_common(count))


async def wait_until_counted(
    api: AdminApi, expected: Mapping[str, int], patience: float, say: Say
) -> None:
    """Until the points service has applied every purchase of these customers."""
    deadline = asyncio.get_running_loop().time() + patience
    waiting = dict(expected)
    while waiting:
        for customer, purchases in list(waiting.items()):
            _, balance = await api.call(
                "points", "GET", f"/v1/customers/{customer}/balance", accept=(404,)
            )
            if isinstance(balance, dict) and balance.get("purchase_count", 0) >= purchases:
                del waiting[customer]
        if waiting and asyncio.get_running_loop().time() > deadline:
            raise CommandError(
                f"the points service has not caught up within {patience:g}s "
                f"(still waiting for {sorted(waiting)})"
            )
        if waiting:
            await asyncio.sleep(1.0)
    say(f"the services have caught up with {len(expected)} busy customers")


async def claim_items(api: AdminApi, customers: Iterable[str], seed: int, say: Say) -> int:
    """Catalogue claims (the saga); retried while the rewards projection lags behind."""
    claimed = 0
    for customer in customers:
        for item in ("coffee", "car-wash"):
            body = {"item_id": item, "idempotency_key": f"demo-{seed}-{customer}-{item}"}
            for _ in range(20):
                status, answer = await api.call(
                    "rewards",
                    "POST",
                    f"/v1/customers/{customer}/claims",
                    body,
                    accept=(409, 422),
                )
                if status < 400:
                    claimed += 1
                    break
                if "insufficient" not in str(answer):
                    break  # a limit or a closed item: not for this customer
                await asyncio.sleep(0.5)
    say(f"catalogue claims: {claimed}")
    return claimed


async def redeem_a_voucher(api: AdminApi, customers: Iterable[str], say: Say) -> None:
    for customer in customers:
        _, view = await api.call("rewards", "GET", f"/v1/customers/{customer}/rewards")
        for voucher in view.get("vouchers", []) if isinstance(view, dict) else []:
            if voucher.get("status") not in ("active", "issued", "valid"):
                continue
            merchant = voucher.get("merchant_id") or "m-cafe"
            await api.call(
                "rewards",
                "POST",
                f"/v1/vouchers/{voucher['code']}/redeem",
                {"merchant_id": merchant},
                accept=(409, 422),
            )
            say(f"redeemed a {voucher.get('reward_code')} voucher of {customer} at {merchant}")
            return


async def richest(api: AdminApi, customers: Iterable[str]) -> tuple[str, int]:
    """The customer with the most available points (catalogue claims spent some), and them."""
    available: dict[str, int] = {}
    for customer in customers:
        _, balance = await api.call("points", "GET", f"/v1/customers/{customer}/balance")
        available[customer] = int(balance["available"])
    customer = max(available, key=lambda c: (available[c], c))
    return customer, available[customer]


async def spend_points(api: AdminApi, customer: str, available: int, seed: int, say: Say) -> None:
    """Two redemptions at the grocer (100 points each, or half of what the customer has),
    the second cancelled; a goodwill adjustment."""
    path = f"/v1/customers/{customer}/redemptions"
    points = max(1, min(100, available // 2))
    done = []
    for number in (1, 2):
        body = {"points": points, "merchant_id": "m-grocer", "reference": f"demo-{seed}-{number}"}
        status, answer = await api.call(
            "points",
            "POST",
            path,
            body,
            headers={"Idempotency-Key": f"demo-{seed}-{customer}-{number}"},
            accept=(409, 422),
        )
        if status < 400:
            done.append(answer["redemption_id"])
    if len(done) == 2:
        await api.call("points", "POST", f"/v1/redemptions/{done[1]}/cancel", {}, accept=(409, 422))
    adjustment = {
        "adjustment_id": f"demo-{seed}-goodwill",
        "customer_id": customer,
        "points": 100,
        "reason": "goodwill after a complaint at the bistro",
    }
    await api.call("points", "POST", "/v1/admin/adjustments", adjustment, accept=(409,))
    say(
        f"{customer}: {len(done)} redemptions ({'one cancelled' if len(done) == 2 else '-'}), "
        "100 goodwill points"
    )


async def after_the_year(
    api: AdminApi, events: Iterable[SimulatedEvent], seed: int, say: Say, patience: float = 300
) -> None:
    busy = busiest_customers(events, 6)
    await wait_until_counted(api, busy, patience, say)
    await claim_items(api, busy, seed, say)
    await redeem_a_voucher(api, busy, say)
    await spend_points(api, *await richest(api, busy), seed, say)
