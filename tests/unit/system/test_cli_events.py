"""The operator CLI's pure rules: what gets published, where, and how it reads."""

from __future__ import annotations

import uuid

import orjson
import pytest

from tooling.cli_env import CommandError
from tooling.cli_events import (
    Message,
    check_events,
    original_topic,
    render,
    select_dead_letter,
    topic_for,
)


def purchase(customer: str = "c-1", amount: object = "12.50", **extra: object) -> dict[str, object]:
    return {
        "event_id": str(uuid.uuid4()),
        "type": "purchase.completed",
        "version": 1,
        "occurred_at": "2026-01-05T10:00:00+01:00",
        "source": "till-7",
        "customer_id": customer,
        "data": {
            "order_id": "o-1",
            "merchant_id": "m-1",
            "store_id": "s-1",
            "amount": amount,
            "currency": "EUR",
        },
        **extra,
    }


def test_one_event_an_array_and_json_lines_are_all_accepted() -> None:
    one, two = purchase("c-1"), purchase("c-2")
    assert len(check_events(orjson.dumps(one).decode())) == 1
    assert len(check_events(orjson.dumps([one, two]).decode())) == 2
    lines = orjson.dumps(one).decode() + "\n\n" + orjson.dumps(two).decode() + "\n"
    assert [c.event.customer_id for c in check_events(lines)] == ["c-1", "c-2"]


def test_a_float_amount_refuses_the_whole_file_naming_event_field_and_rule() -> None:
    text = orjson.dumps([purchase("c-1"), purchase("c-2", amount=12.5)]).decode()
    with pytest.raises(CommandError) as refused:
        check_events(text, "sales.json")
    message = str(refused.value)
    assert "nothing published" in message
    assert "sales.json: event 2: schema_violation" in message
    assert "data.amount" in message and "never a JSON number" in message
    assert "event 1" not in message, "the good event is not reported as bad"


def test_unknown_type_and_broken_json_lines_are_named() -> None:
    with pytest.raises(CommandError, match="unknown_type"):
        check_events(orjson.dumps(purchase(type="purchase.teleported")).decode())
    with pytest.raises(CommandError, match="line 2: not JSON"):
        check_events(orjson.dumps(purchase()).decode() + "\n{oops\n")


def test_unknown_fields_survive_publication_and_the_key_is_the_customer() -> None:
    (checked,) = check_events(orjson.dumps(purchase("c-9", till_firmware="4.2")).decode())
    assert orjson.loads(checked.value)["till_firmware"] == "4.2"
    assert checked.key == b"c-9"


def test_each_event_type_goes_to_its_topic_unless_told_otherwise() -> None:
    (checked,) = check_events(orjson.dumps(purchase()).decode())
    assert topic_for(checked.event) == "pos.purchases"
    assert topic_for(checked.event, "scratch") == "scratch"


def _letter(partition: int, offset: int, event_id: str | None = None) -> Message:
    value = orjson.dumps({"event_id": event_id}) if event_id else b"{broken"
    return Message(
        "points.dlq",
        partition,
        offset,
        1_767_600_000_000,
        b"c-1",
        value,
        (
            ("dlq.error.code", b"schema_violation"),
            ("dlq.error.message", b"data.amount: never a JSON number"),
            ("dlq.original.topic", b"pos.purchases"),
            ("dlq.original.partition", b"3"),
            ("dlq.original.offset", b"41"),
            ("dlq.group", b"points"),
        ),
    )


def test_a_dead_letter_is_found_by_offset_partition_or_event_id() -> None:
    wanted = str(uuid.uuid4())
    letters = [_letter(0, 0), _letter(1, 0, wanted), _letter(1, 1)]
    assert select_dead_letter(letters, offset=1).partition == 1
    assert select_dead_letter(letters, offset=0, partition=1).value == letters[1].value
    assert select_dead_letter(letters, event_id=wanted.upper()) is letters[1]
    with pytest.raises(CommandError, match="2 dead letters match offset 0"):
        select_dead_letter(letters, offset=0)
    with pytest.raises(CommandError, match="no dead letter with offset 9"):
        select_dead_letter(letters, offset=9)
    with pytest.raises(CommandError, match="exactly one of"):
        select_dead_letter(letters)


def test_the_original_topic_comes_from_the_headers() -> None:
    assert original_topic(_letter(0, 0)) == "pos.purchases"
    with pytest.raises(CommandError, match="not a dead letter"):
        original_topic(Message("x", 0, 0, None, None, b"{}"))


def test_a_dead_letter_reads_as_one_line_plus_why_and_where_from() -> None:
    text = render(_letter(2, 5, str(uuid.UUID(int=1))))
    first, why, origin = text.splitlines()
    assert first.startswith("2026-01-05T08:00:00+00:00 points.dlq[2]@5 key=c-1")
    assert "dead-lettered by points: schema_violation: data.amount" in why
    assert origin.strip() == "from pos.purchases[3]@41"


def test_an_event_line_shows_type_customer_and_the_business_facts() -> None:
    document = purchase("c-4")
    message = Message("pos.purchases", 0, 7, None, b"c-4", orjson.dumps(document))
    line = render(message)
    assert "purchase.completed v1 customer=c-4" in line
    assert "amount=12.50" in line and "merchant_id=m-1" in line
