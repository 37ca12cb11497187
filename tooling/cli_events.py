"""Pure pieces of the operator's Kafka commands: read events from a file, choose their
topic, pick a dead letter, and render a message as one readable line.

No I/O here beyond the text handed in, so every rule is unit-tested without a broker.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, get_args

import orjson

from shared.contracts.alerts import ALERT_EVENTS
from shared.contracts.envelope import EventEnvelope
from shared.contracts.points import POINTS_EVENTS
from shared.contracts.pos import PurchaseCompleted, PurchaseReturned, ServiceIncident
from shared.contracts.registry import ContractError, decode_event
from shared.contracts.rewards import REWARDS_EVENTS
from shared.contracts.topics import Topics
from tooling.cli_env import CommandError


def _types(models: Sequence[type[EventEnvelope]], topic: str) -> dict[str, str]:
    return {get_args(model.model_fields["type"].annotation)[0]: topic for model in models}


TOPIC_OF_TYPE: Mapping[str, str] = {
    **_types([PurchaseCompleted, PurchaseReturned], Topics.POS_PURCHASES),
    **_types([ServiceIncident], Topics.SERVICE_INCIDENTS),
    **_types(POINTS_EVENTS, Topics.POINTS),
    **_types(REWARDS_EVENTS, Topics.REWARDS),
    **_types(ALERT_EVENTS, Topics.ALERTS),
}


@dataclass(frozen=True)
class CheckedEvent:
    """An event that passed the contracts, with the document to publish as it was written
    (so fields this version does not know survive)."""

    document: dict[str, Any]
    event: EventEnvelope

    @property
    def key(self) -> bytes:
        return self.event.customer_id.encode()

    @property
    def value(self) -> bytes:
        return orjson.dumps(self.document)


def _documents(text: str) -> list[Any]:
    """One JSON value (an object, or an array of objects), else JSON Lines."""
    try:
        whole = orjson.loads(text)
    except orjson.JSONDecodeError:
        whole = None
    else:
        return whole if isinstance(whole, list) else [whole]
    documents = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            documents.append(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            raise CommandError(f"line {number}: not JSON: {exc}") from exc
    if not documents:
        raise CommandError("no event in the file")
    return documents


def check_events(text: str, source: str = "input") -> list[CheckedEvent]:
    """Every event in `text`, validated; CommandError naming each bad one (nothing partial)."""
    problems: list[str] = []
    checked: list[CheckedEvent] = []
    documents = _documents(text)
    for index, document in enumerate(documents, start=1):
        where = f"{source}: event {index}" if len(documents) > 1 else source
        try:
            event = decode_event(document if isinstance(document, dict) else orjson.dumps(document))
        except ContractError as exc:
            problems.append(f"{where}: {exc.code}: {exc.message}")
            continue
        checked.append(CheckedEvent(document, event))
    if problems:
        raise CommandError("refused, nothing published:\n  " + "\n  ".join(problems))
    return checked


def topic_for(event: EventEnvelope, explicit: str | None = None) -> str:
    """The topic an event belongs on (the flag wins)."""
    if explicit:
        return explicit
    try:
        return TOPIC_OF_TYPE[event.type]
    except KeyError:
        raise CommandError(f"no topic known for {event.type}; pass --topic") from None


# -- dead letters -------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """A consumed message, detached from the client library."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value.decode(errors="replace")
        return None

    @property
    def where(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


def event_id_of(value: bytes | None) -> str | None:
    try:
        document = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return None
    found = document.get("event_id") if isinstance(document, dict) else None
    return str(found) if found is not None else None


def select_dead_letter(
    messages: Sequence[Message],
    *,
    offset: int | None = None,
    partition: int | None = None,
    event_id: str | None = None,
) -> Message:
    """The one dead letter named by its offset in the dlq topic (and partition), or by the
    event id it carried; CommandError when none or several match."""
    if (offset is None) == (event_id is None):
        raise CommandError("name the dead letter with exactly one of --offset or --event-id")
    if event_id is not None:
        wanted = _normalised(event_id)
        found = [m for m in messages if _normalised(event_id_of(m.value)) == wanted]
        what = f"event id {event_id}"
    else:
        found = [
            m
            for m in messages
            if m.offset == offset and (partition is None or m.partition == partition)
        ]
        what = f"offset {offset}" + (f" in partition {partition}" if partition is not None else "")
    if not found:
        raise CommandError(f"no dead letter with {what}")
    if len(found) > 1:
        places = ", ".join(m.where for m in found)
        raise CommandError(f"{len(found)} dead letters match {what} ({places}); add --partition")
    return found[0]


def _normalised(event_id: str | None) -> str | None:
    if event_id is None:
        return None
    try:
        return str(uuid.UUID(event_id))
    except ValueError:
        return event_id


def original_topic(message: Message) -> str:
    topic = message.header("dlq.original.topic")
    if not topic:
        raise CommandError(f"{message.where} has no dlq.original.topic header: not a dead letter")
    return topic


# -- one readable line per message --------------------------------------------------------


def _when(timestamp_ms: int | None) -> str:
    if timestamp_ms is None or timestamp_ms < 0:
        return "-"
    return datetime.fromtimestamp(timestamp_ms / 1000, UTC).isoformat(timespec="seconds")


def _summary(document: dict[str, Any]) -> str:
    data = document.get("data") if isinstance(document.get("data"), dict) else {}
    assert isinstance(data, dict)
    parts = [f"{document.get('type')} v{document.get('version')}"]
    parts.append(f"customer={document.get('customer_id')}")
    parts.append(f"occurred_at={document.get('occurred_at')}")
    for name in ("status", "points", "amount", "value_at_risk", "currency", "merchant_id"):
        if name in data:
            parts.append(f"{name}={data[name]}")
    if "reason" in data:
        parts.append(f"reason={data['reason']!r}")
    return " ".join(parts)


def render(message: Message) -> str:
    """`<when> <topic>[p]@offset key=... <event summary>`, then the dlq.* headers if any."""
    head = f"{_when(message.timestamp_ms)} {message.where} key={(message.key or b'').decode()}"
    try:
        document = orjson.loads(message.value or b"")
    except orjson.JSONDecodeError:
        document = None
    if isinstance(document, dict):
        body = _summary(document)
    else:
        body = f"(not an event) {(message.value or b'')[:200]!r}"
    line = f"{head} {body}"
    code = message.header("dlq.error.code")
    if code is not None:
        line += (
            f"\n    dead-lettered by {message.header('dlq.group')}: {code}: "
            f"{message.header('dlq.error.message')}"
            f"\n    from {message.header('dlq.original.topic')}"
            f"[{message.header('dlq.original.partition')}]@{message.header('dlq.original.offset')}"
        )
    return line
