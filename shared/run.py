"""`make run`: the whole system on the embedded default, stopped with Ctrl-C.

Starts (or reuses) the embedded PostgreSQL and Tansu broker, creates the topics,
applies every service's migrations, starts every service that exists, prints the
URLs and what to try next, and stops it all cleanly on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from shared.contracts.topics import Topics
from shared.devinfra import InfraError, infra_from_environment
from shared.kafka.admin import ensure_topics
from shared.migrate import SERVICES, upgrade


async def _serve() -> int:
    infra = infra_from_environment()
    try:
        state = infra.up()
    except InfraError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    await ensure_topics(state.bootstrap_servers, Topics.ALL)
    for service in SERVICES:
        await asyncio.to_thread(upgrade, service, state.database_url(service))
    print("PostgreSQL and the broker are up; every database is migrated.")
    for name, value in state.environment().items():
        print(f"  {name}={value}")
    print("The broker keeps topics in memory: they start empty after a restart.")
    print("PostgreSQL data persists under ./var/. Press Ctrl-C to stop everything.")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    print("stopping...")
    infra.down()
    return 0


def main() -> int:
    return asyncio.run(_serve())


if __name__ == "__main__":
    sys.exit(main())
