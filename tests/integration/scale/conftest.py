"""Scale-out tests run on Apache Kafka, whatever broker the session uses.

With LOYALTY_BROKER=kafka (CI) they share the session's broker; otherwise they start a
private single-node Apache Kafka for the session (java and mvn needed, as for
LOYALTY_BROKER=kafka).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.infra import Infra, free_port
from tooling.devinfra import broker_from_environment
from tooling.devkafka import KafkaCluster, NodeSpec


@pytest.fixture(scope="session")
def apache_kafka(infra: Infra) -> Iterator[str]:
    """Bootstrap servers of an Apache Kafka broker."""
    if infra.mode == "embedded-kafka" or (
        infra.mode == "external" and broker_from_environment() == "kafka"
    ):
        yield infra.bootstrap_servers
        return
    root = Path(tempfile.mkdtemp(prefix="loyalty-scale-kafka-"))
    cluster = KafkaCluster(root, [NodeSpec(1, free_port(), free_port())])
    try:
        cluster.start()
        yield cluster.bootstrap_servers
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
