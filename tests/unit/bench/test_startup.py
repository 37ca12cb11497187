"""Start to first applied batch, split by the requests the consumer's client really sent."""

from __future__ import annotations

from typing import Any

import pytest

from bench.startup import StartupTimeline, request_name


class JoinGroupRequest:
    pass


class SyncGroupRequest_v3:  # as aiokafka names its versioned structs
    pass


class FindCoordinatorRequest:
    pass


class FetchRequest:
    pass


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class Client:
    """Answers each request after the seconds the test gives for its name."""

    def __init__(self, clock: Clock, delays: dict[str, float]) -> None:
        self.clock = clock
        self.delays = delays
        self.sent: list[Any] = []

    async def send(self, node_id: int, request: Any, *, group: int = 0) -> str:
        self.sent.append((node_id, request, group))
        self.clock.t += self.delays[type(request).__name__]
        return "answer"


class KafkaConsumer:
    """The two attributes of an AIOKafkaConsumer the timeline wraps."""

    def __init__(self, client: Client, clock: Clock) -> None:
        self._client = client
        self.clock = clock

    async def start(self) -> None:
        self.clock.t += 0.05  # bootstrap and metadata, not through send
        await self._client.send(1, FindCoordinatorRequest())
        await self._client.send(1, JoinGroupRequest(), group=1)
        await self._client.send(1, SyncGroupRequest_v3(), group=1)


def test_request_names_drop_the_request_suffix_and_version() -> None:
    assert request_name(JoinGroupRequest()) == "JoinGroup"
    assert request_name(SyncGroupRequest_v3()) == "SyncGroup"


async def test_the_split_adds_up_and_shows_where_the_join_waited() -> None:
    clock = Clock()
    delays = {
        "FindCoordinatorRequest": 0.01,
        "JoinGroupRequest": 3.0,
        "SyncGroupRequest_v3": 0.02,
        "FetchRequest": 0.5,
    }
    client = Client(clock, delays)
    kafka = KafkaConsumer(client, clock)
    timeline = StartupTimeline("tansu", now=clock)
    timeline.watch(kafka)

    timeline.start()
    clock.t += 0.2  # the runtime's gc freeze before the client starts
    await kafka.start()
    assert await kafka._client.send(1, FetchRequest()) == "answer", "answers pass through"
    timeline.batch_received()
    clock.t += 0.1
    timeline.batch_applied()
    await kafka._client.send(1, FetchRequest())  # after the first batch: not recorded

    split = timeline.split()
    assert split == pytest.approx(
        {"client start": 0.25, "group join": 3.03, "first fetch": 0.5, "first apply": 0.1}
    )
    assert sum(split.values()) == pytest.approx(timeline.total_s())
    trips = timeline.round_trips(("JoinGroup", "SyncGroup", "Fetch"))
    assert {name: count for name, (count, _) in trips.items()} == {
        "JoinGroup": 1,
        "SyncGroup": 1,
        "Fetch": 1,
    }
    assert [seconds for _, seconds in trips.values()] == pytest.approx([3.0, 0.02, 0.5])
    assert len(timeline.requests) == 4
    assert [group for _, _, group in client.sent] == [0, 1, 1, 0, 0], "arguments pass through"
    line = timeline.line("runtime no-op")
    assert line.startswith("start to first applied batch (tansu), runtime no-op: 3.88 s = ")
    assert "group join 3.03" in line and "JoinGroup 1x 3.00" in line
    figures = timeline.figures("runtime_noop_")
    assert figures["runtime_noop_startup_s"] == 3.88
    assert figures["runtime_noop_startup.group_join_s"] == 3.03
    assert figures["runtime_noop_startup.JoinGroup_s"] == 3.0
    assert figures["runtime_noop_startup_broker"] == "tansu"


async def test_input_published_after_the_join_is_not_charged_to_the_fetch() -> None:
    clock = Clock()
    delays = {"FindCoordinatorRequest": 0.0, "JoinGroupRequest": 1.0, "SyncGroupRequest_v3": 0.0}
    kafka = KafkaConsumer(Client(clock, delays), clock)
    timeline = StartupTimeline("kafka", now=clock)
    timeline.watch(kafka)
    timeline.start()
    await kafka.start()
    clock.t += 2.0  # the benchmark starts publishing only now
    timeline.input_published()
    clock.t += 0.3
    timeline.batch_received()
    timeline.batch_applied()
    assert timeline.split() == pytest.approx(
        {
            "client start": 0.05,
            "group join": 1.0,
            "waiting for input": 2.0,
            "first fetch": 0.3,
            "first apply": 0.0,
        }
    )


def test_a_consumer_that_never_applied_a_batch_says_so() -> None:
    timeline = StartupTimeline("tansu", now=Clock())
    timeline.start()
    assert timeline.split() == {}
    assert timeline.total_s() is None
    assert timeline.line("points accrual").endswith("points accrual: no batch applied")
    assert timeline.figures("accrual_") == {
        "accrual_startup_s": None,
        "accrual_startup_broker": "tansu",
    }
