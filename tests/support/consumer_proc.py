"""A consumer process for crash tests: `python -m tests.support.consumer_proc ...`.

SIGTERM asks it to finish its batch, commit and leave the group; SIGKILL is the
crash the tests inflict.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from shared.db import create_engine
from shared.kafka.runtime import EventConsumer
from tests.support.counting import counting_registry


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--max-batch", type=int, default=100)
    args = parser.parse_args()
    engine = create_engine(args.db, pool_size=4)
    consumer = EventConsumer(
        group_id=args.group,
        topics=[args.topic],
        bootstrap_servers=args.bootstrap,
        engine=engine,
        registry=counting_registry(args.delay),
        max_batch=args.max_batch,
        consumer_options={"session_timeout_ms": 6000, "heartbeat_interval_ms": 500},
    )
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, consumer.request_stop)
    print("consumer started", flush=True)
    await consumer.run()
    await engine.dispose()
    print("consumer stopped", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
