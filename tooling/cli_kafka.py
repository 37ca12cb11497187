"""`loyalty publish | tail | dlq replay | topics`: the operator's hands on the broker.

    loyalty publish EVENTS.json [--topic T]      validate every event, then publish them all
    loyalty tail loyalty.alerts [--from-beginning] [--max N] [--idle-exit S]
    loyalty tail points.dlq --from-beginning     dead letters, with their dlq.* headers
    loyalty dlq replay --group points --offset 3 [--partition 1] [--file FIXED.json]
    loyalty dlq replay --group points --event-id 2b1c... --file FIXED.json
    loyalty topics ensure                        create every platform and dead-letter topic

`publish` refuses the whole file when one event breaks the contracts, naming the event,
the field and the rule; nothing is half-published. The message key is the customer id.
`dlq replay` finds the dead letter (by its offset in `<group>.dlq`, as `tail` prints it,
or by the event id it carried), and publishes the fixed event (or the original, when it
now passes the contracts) to the topic named in its `dlq.original.topic` header.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shared.contracts.topics import dead_letter_topic
from shared.kafka.admin import ensure_topics
from shared.settings import KafkaSettings
from tooling.cli_env import CommandError, bootstrap_servers
from tooling.cli_events import (
    CheckedEvent,
    Message,
    check_events,
    event_id_of,
    original_topic,
    render,
    select_dead_letter,
    topic_for,
)
from tooling.run import platform_topics  # the same list `make run` creates


def _read(path: str) -> str:
    file = Path(path)
    if not file.is_file():
        raise CommandError(f"no such file: {path}")
    return file.read_text(encoding="utf-8")


@asynccontextmanager
async def _producer(bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


async def publish_events(
    bootstrap: str,
    events: list[CheckedEvent],
    topic: str | None = None,
    headers: list[tuple[str, bytes]] | None = None,
) -> list[tuple[str, int, int]]:
    """Publish checked events keyed by customer; returns (topic, partition, offset) of each."""
    placed = []
    async with _producer(bootstrap) as producer:
        for checked in events:
            target = topic_for(checked.event, topic)
            sent = await producer.send_and_wait(
                target, checked.value, key=checked.key, headers=headers
            )
            placed.append((target, sent.partition, sent.offset))
    return placed


async def publish(args: argparse.Namespace) -> int:
    events = check_events(_read(args.file), args.file)
    placed = await publish_events(bootstrap_servers(args.bootstrap_servers), events, args.topic)
    for checked, (topic, partition, offset) in zip(events, placed, strict=True):
        event = checked.event
        print(f"published {event.type} {event.event_id} to {topic}[{partition}]@{offset}")
    return 0


def _message(record: object) -> Message:
    return Message(
        topic=record.topic,  # type: ignore[attr-defined]
        partition=record.partition,  # type: ignore[attr-defined]
        offset=record.offset,  # type: ignore[attr-defined]
        timestamp_ms=record.timestamp,  # type: ignore[attr-defined]
        key=record.key,  # type: ignore[attr-defined]
        value=record.value,  # type: ignore[attr-defined]
        headers=tuple(record.headers),  # type: ignore[attr-defined]
    )


@asynccontextmanager
async def _reader(
    bootstrap: str, topic: str, from_beginning: bool
) -> AsyncIterator[AIOKafkaConsumer]:
    """A group-less consumer assigned every partition of `topic` (no offsets committed)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = await _partitions(consumer, topic)
        consumer.assign(partitions)
        if from_beginning:
            await consumer.seek_to_beginning(*partitions)
        else:
            await consumer.seek_to_end(*partitions)
        yield consumer
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    for _ in range(20):  # metadata of a topic just created can take a moment
        found = consumer.partitions_for_topic(topic)
        if found:
            return [TopicPartition(topic, p) for p in sorted(found)]
        await consumer._client.force_metadata_update()
        await asyncio.sleep(0.1)
    raise CommandError(f"no topic {topic} on the broker")


async def read_whole_topic(bootstrap: str, topic: str, patience: float = 60) -> list[Message]:
    """Every message now in `topic`, up to the end offsets seen when reading starts.

    The end is the larger of ListOffsets(latest) and the high watermark of the fetches:
    Tansu answers ListOffsets below its real end (10,654 for 10,765 messages written),
    while its fetch responses carry the true high watermark, so trusting the first alone
    missed the newest messages there.
    """
    async with _reader(bootstrap, topic, from_beginning=True) as consumer:
        ends = await consumer.end_offsets(list(consumer.assignment()))
        records: list[Any] = []
        for part in (await consumer.getmany(timeout_ms=500)).values():
            records.extend(part)  # one fetch at least: its high watermark is the true end
        deadline = asyncio.get_running_loop().time() + patience
        while True:
            while await _behind(consumer, ends):
                if asyncio.get_running_loop().time() > deadline:
                    raise CommandError(f"could not read {topic} to its end within {patience:g}s")
                batch = await consumer.getmany(timeout_ms=500)
                for part in batch.values():
                    records.extend(part)
            higher = {tp: max(end, consumer.highwater(tp) or 0) for tp, end in ends.items()}
            if higher == ends:
                break
            ends = higher
        return [
            _message(r) for r in records if r.offset < ends[TopicPartition(r.topic, r.partition)]
        ]


async def _behind(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return True
    return False


async def tail(args: argparse.Namespace) -> int:
    bootstrap = bootstrap_servers(args.bootstrap_servers)
    shown = 0
    loop = asyncio.get_running_loop()
    async with _reader(bootstrap, args.topic, args.from_beginning) as consumer:
        print(f"tailing {args.topic} on {bootstrap} (Ctrl-C stops)", file=sys.stderr)
        quiet_since = loop.time()
        while args.max is None or shown < args.max:
            batch = await consumer.getmany(timeout_ms=500)
            records = sorted((r for rs in batch.values() for r in rs), key=lambda r: r.timestamp)
            for record in records[: None if args.max is None else args.max - shown]:
                print(render(_message(record)), flush=True)
                shown += 1
            if records:
                quiet_since = loop.time()
            elif args.idle_exit is not None and loop.time() - quiet_since >= args.idle_exit:
                break
    return 0


async def dlq_replay(args: argparse.Namespace) -> int:
    bootstrap = bootstrap_servers(args.bootstrap_servers)
    topic = dead_letter_topic(args.group)
    letters = await read_whole_topic(bootstrap, topic)
    letter = select_dead_letter(
        letters, offset=args.offset, partition=args.partition, event_id=args.event_id
    )
    target = original_topic(letter)
    print(render(letter), file=sys.stderr)
    if args.file:
        events = check_events(_read(args.file), args.file)
    else:
        text = (letter.value or b"").decode(errors="replace")
        try:
            events = check_events(text, f"the dead letter at {letter.where}")
        except CommandError as exc:
            raise CommandError(f"{exc}\nfix it and pass the fixed event with --file") from None
    if len(events) != 1:
        raise CommandError("a replay publishes exactly one event; the file holds several")
    if letter.header("dlq.error.code") == "payload_conflict" and not _new_id(letter, events[0]):
        raise CommandError(
            "this dead letter reused an event id with other content; "
            "the fixed event needs a new event_id, or it will conflict again"
        )
    replay_headers = [("replay.of", letter.where.encode())]
    placed = await publish_events(bootstrap, events, target, replay_headers)
    where = f"{placed[0][0]}[{placed[0][1]}]@{placed[0][2]}"
    print(f"replayed {letter.where} as {events[0].event.event_id} to {where}")
    return 0


def _new_id(letter: Message, fixed: CheckedEvent) -> bool:
    return event_id_of(letter.value) != str(fixed.event.event_id)


async def topics_ensure(args: argparse.Namespace) -> int:
    topics = platform_topics(os.environ)
    partitions = args.partitions or KafkaSettings().default_partitions
    await ensure_topics(bootstrap_servers(args.bootstrap_servers), topics, partitions)
    print(f"topics present: {', '.join(topics)}")
    return 0


def _broker_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bootstrap-servers", help="overrides KAFKA_BOOTSTRAP_SERVERS")


def add_kafka_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    publisher = commands.add_parser(
        "publish", help="validate events from a JSON file, publish them"
    )
    publisher.add_argument("file", help="one event, a JSON array of events, or JSON Lines")
    publisher.add_argument("--topic", help="default: the topic of each event's type")
    _broker_argument(publisher)
    publisher.set_defaults(run=publish)

    tailer = commands.add_parser("tail", help="print a topic's messages as readable lines")
    tailer.add_argument("topic", help="e.g. loyalty.alerts or points.dlq")
    tailer.add_argument("--from-beginning", action="store_true")
    tailer.add_argument("--max", type=int, help="stop after this many messages")
    tailer.add_argument("--idle-exit", type=float, help="stop after this many quiet seconds")
    _broker_argument(tailer)
    tailer.set_defaults(run=tail)

    dlq = commands.add_parser("dlq", help="dead letters")
    dlq_actions = dlq.add_subparsers(dest="action", required=True)
    replay = dlq_actions.add_parser("replay", help="re-publish a dead letter to its topic")
    replay.add_argument("--group", required=True, help="consumer group: reads <group>.dlq")
    replay.add_argument("--offset", type=int, help="offset in <group>.dlq, as `tail` prints")
    replay.add_argument("--partition", type=int, help="partition of --offset in <group>.dlq")
    replay.add_argument("--event-id", help="the event id the dead letter carried")
    replay.add_argument("--file", help="the fixed event (JSON); default: the original")
    _broker_argument(replay)
    replay.set_defaults(run=dlq_replay)

    topics = commands.add_parser("topics", help="topic administration")
    topic_actions = topics.add_subparsers(dest="action", required=True)
    ensure = topic_actions.add_parser("ensure", help="create missing platform and dlq topics")
    ensure.add_argument("--partitions", type=int, help="default: KAFKA_DEFAULT_PARTITIONS")
    _broker_argument(ensure)
    ensure.set_defaults(run=topics_ensure)
