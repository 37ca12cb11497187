"""A short simulation published to the real broker: every message is a valid event."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaProducer

from shared.contracts.registry import decode_event
from shared.contracts.topics import Topics
from shared.kafka.admin import ensure_topics
from tests.support.dlq import read_topic
from tests.support.infra import Infra
from tooling.cli_simulate import KafkaSender
from tooling.simulator.runner import Pacing, Progress, ProgressDisplay, run_simulation
from tooling.simulator.stream import SimulationConfig, generate

pytestmark = pytest.mark.integration


async def test_a_simulated_quarter_reaches_the_broker_as_valid_keyed_events(
    infra: Infra, unique: str
) -> None:
    prefix = f"sim-{unique}."
    config = SimulationConfig(customers=15, days=90, seed=4, start=datetime(2026, 1, 1, tzinfo=UTC))
    expected = list(generate(config))
    topics = sorted({e.topic for e in expected})
    await ensure_topics(infra.bootstrap_servers, [prefix + t for t in topics], partitions=4)
    producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers, acks="all")
    await producer.start()
    try:
        sender = KafkaSender(producer, window=50, topic_prefix=prefix)
        output = io.StringIO()
        progress = await run_simulation(
            generate(config),
            sender,
            Pacing(config.start, 0),
            Progress(len(expected)),
            ProgressDisplay(output),
        )
        await sender.flush()
    finally:
        await producer.stop()
    assert progress.sent == len(expected)
    assert "100.0%" in output.getvalue()

    received = []
    for topic in topics:
        wanted = sum(1 for e in expected if e.topic == topic)
        records = await read_topic(infra.bootstrap_servers, prefix + topic, wanted, timeout=30)
        assert len(records) == wanted, f"{topic}: {len(records)} of {wanted} events arrived"
        for record in records:
            event = decode_event(record.value)
            assert record.key == event.customer_id.encode(), "key must be the customer id"
            received.append(event)
    assert {e.event_id for e in received} == {e.event.event_id for e in expected}
    assert Topics.POS_PURCHASES in topics and Topics.SERVICE_INCIDENTS in topics
