"""Pure parts of the consumer runtime: in-batch duplicates and runs by type."""

from __future__ import annotations

import orjson
from aiokafka.structs import ConsumerRecord

from shared.kafka.runtime import _runs_by_type, decode, dedupe_within_batch
from tests.support.counting import purchase


def _record(offset: int, value: bytes) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord("t", 0, offset, 0, 0, b"k", value, None, len(b"k"), len(value), [])


def test_later_copies_in_a_batch_are_marked_duplicates() -> None:
    first = purchase("c1")
    items = [decode(_record(i, orjson.dumps(first))) for i in range(3)]
    dedupe_within_batch(items)
    assert [it.duplicate for it in items] == [False, True, True]


def test_poison_is_decoded_without_raising() -> None:
    item = decode(_record(0, b"not json"))
    assert item.poison is not None and item.poison[0] == "not_json"


def test_runs_keep_order_and_group_consecutive_types() -> None:
    returned = purchase("c1", type="purchase.returned")
    raw = [purchase("c1"), purchase("c1"), returned, purchase("c1")]
    items = [decode(_record(i, orjson.dumps(e))) for i, e in enumerate(raw)]
    first = items[0].event
    assert first is not None, "a valid purchase decodes to an event"
    items[2].event = first.model_copy(update={"type": "purchase.returned"})
    runs = _runs_by_type(items, [0, 1, 2, 3], singles=False)
    assert [[i for i, _ in run] for run in runs] == [[0, 1], [2], [3]]
    assert len(_runs_by_type(items, [0, 1, 2, 3], singles=True)) == 4
