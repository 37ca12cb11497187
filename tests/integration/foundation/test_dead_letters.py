"""Poison messages go to `<group>.dlq` with the reason; the good ones around them apply once."""

from __future__ import annotations

import uuid

import orjson
import pytest

from shared.contracts.topics import dead_letter_topic
from shared.kafka.admin import ensure_topics
from tests.support.counting import (
    applications,
    counting_registry,
    prepare,
    publish,
    purchase,
    wait_until,
)
from tests.support.dlq import headers, read_topic
from tests.support.infra import Infra
from tests.support.running import running_consumer

pytestmark = pytest.mark.integration


def _poison_cases() -> list[tuple[str, bytes]]:
    missing = purchase("c1")
    del missing["data"]["order_id"]
    naive = purchase("c1", occurred_at="2026-11-01T12:00:00")
    float_money = purchase("c1")
    float_money["data"]["amount"] = 12.5
    unknown_type = purchase("c1", type="purchase.teleported")
    unknown_version = purchase("c1", version=7)
    return [
        ("not_json", b"{this is not json"),
        ("schema_violation", orjson.dumps(missing)),
        ("schema_violation", orjson.dumps(naive)),
        ("schema_violation", orjson.dumps(float_money)),
        ("unknown_type", orjson.dumps(unknown_type)),
        ("unknown_version", orjson.dumps(unknown_version)),
    ]


async def test_poison_goes_to_dead_letter_topic_and_good_events_apply_once(
    infra: Infra, points_db: str, unique: str
) -> None:
    topic, group = f"b.{unique}", f"g-b-{unique}"
    dlq = dead_letter_topic(group)
    await ensure_topics(infra.bootstrap_servers, [topic, dlq], partitions=1)
    await prepare(points_db)
    goods = [purchase("c1", "10.00") for _ in range(8)]
    conflict = dict(goods[0], data=dict(goods[0]["data"], amount="99.00"))
    cases = [*_poison_cases(), ("payload_conflict", orjson.dumps(conflict))]
    stream: list[bytes] = []
    for i, (_, raw) in enumerate(cases):
        stream += [orjson.dumps(goods[i % len(goods)]), raw]
    stream += [orjson.dumps(g) for g in goods]  # replays of every good event, too
    await publish(infra.bootstrap_servers, topic, stream, key=b"c1")
    expected = {uuid.UUID(g["event_id"]) for g in goods}

    async def applied_once() -> object:
        counts = await applications(points_db)
        return (set(counts) == expected and set(counts.values()) == {1}) or counts

    async with running_consumer(
        infra.bootstrap_servers, points_db, group, [topic], counting_registry(), max_batch=5
    ):
        await wait_until(applied_once)
        dead = await read_topic(infra.bootstrap_servers, dlq, expected=len(cases))
    assert [headers(r)["dlq.error.code"] for r in dead] == [code for code, _ in cases], (
        "dead-letter codes differ from the poison published"
    )
    for record, (_, raw) in zip(dead, cases, strict=True):
        meta = headers(record)
        assert record.value == raw, "the dead letter must carry the original bytes"
        assert meta["dlq.original.topic"] == topic
        assert int(meta["dlq.original.offset"]) % 2 == 1, "poison sat at odd offsets"
        assert meta["dlq.original.partition"] == "0"
        assert meta["dlq.error.message"], "a dead letter must say what was wrong"
    assert await applied_once() is True, "good events around poison must apply exactly once"
