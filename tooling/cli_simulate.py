"""`loyalty simulate`: a coalition's point-of-sale stream, in accelerated time.

    loyalty simulate                                   100 customers, a year, in about a minute
    loyalty simulate --customers 500 --days 730 --wall-seconds 120 --seed 7
    loyalty simulate --speed 0                         as fast as the broker takes it

Customers keep their own rhythms (weekly, monthly, occasional) across five partner
merchants; some return goods, some meet service incidents (a dish later than the promised
10 minutes, a slow check-in), and some stop coming back, which the alerts service (on
event time, as `make run` starts it) reports as lapse alerts.

Deterministic: the same --seed and --start give the same events, ids included (so a
second run is deduplicated by the services). --start defaults to midnight UTC `--days`
days ago, so the simulated period ends today.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError

from tooling.cli_env import CommandError, bootstrap_servers, service_endpoint
from tooling.simulator.runner import Pacing, Progress, ProgressDisplay, run_simulation
from tooling.simulator.seeding import (
    SERVICES,
    AdminApi,
    after_the_year,
    link_referrals,
    seed_programme,
)
from tooling.simulator.stream import SimulationConfig, generate

INTERRUPTED = 130  # the shell's code for a command stopped by Ctrl-C


class KafkaSender:
    """Batches sends (one delivery wait per batch), keyed by customer. `topic_prefix`
    moves the stream to other topics (a staging copy, or a test's own topics)."""

    def __init__(
        self, producer: AIOKafkaProducer, window: int = 500, topic_prefix: str = ""
    ) -> None:
        self.producer = producer
        self.window = window
        self.topic_prefix = topic_prefix
        self.pending: list[asyncio.Future[Any]] = []

    async def send(self, topic: str, value: bytes, key: bytes) -> None:
        target = self.topic_prefix + topic
        self.pending.append(await self.producer.send(target, value, key=key))
        if len(self.pending) >= self.window:
            await self.flush()

    async def flush(self) -> None:
        for delivery in self.pending:
            await delivery
        self.pending.clear()


async def start_producer(bootstrap: str) -> AIOKafkaProducer:
    """A started producer, or a CommandError that says which broker and how to point at it.

    The usual cause is a second terminal that does not know where `make run` put the
    broker (a LOYALTY_VAR_DIR or LOYALTY_KAFKA_PORT of its own), so the message says so
    instead of aiokafka's bootstrap error and its "unclosed producer" warning.
    """
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=10)
    try:
        await producer.start()
    except KafkaConnectionError as exc:
        await producer.stop()
        raise CommandError(
            f"cannot reach the broker at {bootstrap} ({exc}). Is `make run` running? "
            "If it runs with its own LOYALTY_VAR_DIR, export the same LOYALTY_VAR_DIR here "
            "(`make run` prints it), or pass --bootstrap-servers."
        ) from exc
    return producer


def default_start(days: int, today: datetime | None = None) -> datetime:
    """Midnight UTC `days` days before today: the simulated period ends now."""
    now = today or datetime.now(UTC)
    return datetime(now.year, now.month, now.day, tzinfo=UTC) - timedelta(days=days)


def parse_start(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise CommandError(f"--start: not an ISO date or time: {text!r}") from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def speed_for(args: argparse.Namespace) -> float:
    """--speed if given, else what fits the simulated days into --wall-seconds."""
    if args.speed is not None:
        return float(args.speed)
    if args.wall_seconds <= 0:
        return 0.0
    return float(args.days * 86_400 / args.wall_seconds)


def config_from(args: argparse.Namespace) -> SimulationConfig:
    start = parse_start(args.start) if args.start else default_start(args.days)
    try:
        return SimulationConfig(
            customers=args.customers,
            merchants=args.merchants,
            days=args.days,
            seed=args.seed,
            start=start,
            churn_rate=args.churn_rate,
            customer_prefix=args.prefix,
        )
    except ValueError as exc:
        raise CommandError(str(exc)) from exc


async def simulate(args: argparse.Namespace) -> int:
    if not args.demo:
        return await publish_year(args)
    endpoints = {name: service_endpoint(name) for name in SERVICES}
    async with httpx.AsyncClient(timeout=30) as client:
        api = AdminApi(
            {n: e.url for n, e in endpoints.items()},
            {n: e.admin_key for n, e in endpoints.items()},
            client,
        )
        await seed_programme(api, print)
        await link_referrals(api, config_from(args), print)
        code = await publish_year(args)
        if code == 0:
            await after_the_year(api, generate(config_from(args)), args.seed, print)
            print("demo ready: open the console (`make run` printed its URL) and sign in")
        return code


async def publish_year(args: argparse.Namespace) -> int:
    config = config_from(args)
    speed = speed_for(args)
    total = sum(1 for _ in generate(config))  # cheap, and the progress line can say how far
    bootstrap = bootstrap_servers(args.bootstrap_servers)
    print(
        f"simulating {config.customers} customers at {config.merchants} merchants from "
        f"{config.start.date()} to {config.end.date()} ({total} events, seed {config.seed}, "
        f"{'no pacing' if speed <= 0 else f'{speed:,.0f}x real time'}) into {bootstrap}"
    )
    progress = Progress(total=total)
    producer = await start_producer(bootstrap)
    try:
        sender = KafkaSender(producer, topic_prefix=args.topic_prefix)
        try:
            await run_simulation(
                generate(config), sender, Pacing(config.start, speed), progress, ProgressDisplay()
            )
        except asyncio.CancelledError:  # Ctrl-C: stop() below still delivers what was sent
            print(
                f"\ninterrupted after {progress.sent} events; the same command again is safe "
                "(same ids: the services skip what they have already seen)"
            )
            return INTERRUPTED
        await sender.flush()
    finally:
        await producer.stop()
    print(f"done: {progress.sent} events published")
    return 0


def add_simulate_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    parser = commands.add_parser("simulate", help="publish a simulated point-of-sale stream")
    parser.add_argument("--customers", type=int, default=100)
    parser.add_argument("--merchants", type=int, default=5, help="coalition partners (1-5)")
    parser.add_argument("--days", type=int, default=365, help="simulated days")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--start", help="ISO date of the first simulated day (default: see above)")
    parser.add_argument("--churn-rate", type=float, default=0.15, help="share who stop coming")
    parser.add_argument("--prefix", default="c-", help="customer id prefix")
    parser.add_argument(
        "--wall-seconds", type=float, default=60.0, help="real seconds the run should take"
    )
    parser.add_argument(
        "--speed", type=float, help="simulated seconds per real second (0: no pacing)"
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="seed the demo programme through the admin APIs first, then act as people do "
        "(claims, redemptions) once the year is published (what `make demo` runs)",
    )
    parser.add_argument("--topic-prefix", default="", help="publish to <prefix><topic> instead")
    parser.add_argument("--bootstrap-servers", help="overrides KAFKA_BOOTSTRAP_SERVERS")
    parser.set_defaults(run=simulate)
