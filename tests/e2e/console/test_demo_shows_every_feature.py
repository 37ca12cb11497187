"""`make demo` on the system `make run` starts: after the simulated year every event type
the demo promises (DEMO_EVENTS) has appeared on the platform's topics, and the console shows
held compensations and the seeded programme.

This runs the demo exactly as `make demo` does (200 customers, a year in about a minute)
on a system of its own, started clean as `make run` starts it: the demo's year ends today,
and the other end-to-end tests move the alerts service's event-time clock into the future,
after which the demo's year could no longer raise alerts the way a new user sees them.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import orjson
import pytest

from shared.contracts.topics import Topics
from tests.e2e.conftest import ROOT, System, run_system
from tests.e2e.console.conftest import admin_keys, console_url
from tooling.cli_kafka import read_whole_topic
from tooling.simulator.programme import DEMO_EVENTS

DEMO = ["simulate", "--demo", "--customers", "200", "--days", "365", "--wall-seconds", "60"]
SETTLE_SECONDS = 120  # due-time jobs (voucher expiry, alert scans) after the last event


def _types_on_topics(bootstrap: str) -> Counter[str]:
    async def read() -> Counter[str]:
        seen: Counter[str] = Counter()
        for topic in Topics.ALL:
            for message in await read_whole_topic(bootstrap, topic):
                seen[orjson.loads(message.value or b"{}").get("type", "?")] += 1
        return seen

    return asyncio.run(read())


@pytest.fixture(scope="module")
def fresh_system() -> Iterator[System]:
    """`make run` from a clean state, for this module alone (stopped as Ctrl-C stops it)."""
    yield from run_system(expect_stop_report=False)


def test_the_demo_produces_every_event_it_promises(fresh_system: System) -> None:
    system = fresh_system
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith(("_DATABASE_URL", "_ADMIN_KEY", "_URL"))
        and k != "KAFKA_BOOTSTRAP_SERVERS"
    }
    env["LOYALTY_VAR_DIR"] = str(system.var_dir)
    demo = subprocess.run(
        [sys.executable, "-m", "tooling.cli", *DEMO],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert demo.returncode == 0, f"make demo failed:\n{demo.stdout[-3000:]}\n{demo.stderr[-3000:]}"
    assert "demo ready" in demo.stdout

    deadline = time.monotonic() + SETTLE_SECONDS
    missing: list[str] = list(DEMO_EVENTS)
    while missing and time.monotonic() < deadline:
        seen = _types_on_topics(system.bootstrap_servers)
        missing = [event for event in DEMO_EVENTS if not seen[event]]
        if missing:
            time.sleep(5)
    assert not missing, f"the demo promised these events but none appeared: {missing}"

    with httpx.Client(base_url=console_url(system), timeout=60, follow_redirects=True) as http:
        token = http.get("/signin").text.split('name="csrf_token" value="')[1].split('"')[0]
        http.post(
            "/signin",
            data={"csrf_token": token, "name": "Demo", "keys": "\n".join(admin_keys(system))},
        )
        reviews = http.get("/reviews").text
        assert "m-bistro" in reviews and "merchant_monthly_budget" in reviews, (
            "the demo must leave compensations held over the bistro's budget for a person"
        )
        programme = http.get("/programme").text
        assert "dish_wait_time" in programme and "check_in_time" in programme
        assert "every-2000-points" in programme and "late-checkout" in programme
