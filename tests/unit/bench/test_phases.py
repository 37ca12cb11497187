"""The per-phase table charges each phase only the CPU spent in it by its own task."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest

from bench.phases import UNTIMED, PhaseClock, TaskPhase, WaitClock


class WorkCounter:
    """A CPU clock that moves only when the test says work was done."""

    def __init__(self) -> None:
        self.spent = 0.0

    def __call__(self) -> float:
        return self.spent

    def work(self, seconds: float) -> None:
        self.spent += seconds


class Steps:
    """Stand-ins for the hot path's functions, patched with phases by the clock."""

    def __init__(self, cpu: WorkCounter) -> None:
        self.cpu = cpu

    def decode(self) -> None:
        self.cpu.work(2.0)

    async def write(self, other_task_runs: asyncio.Event) -> None:
        self.cpu.work(3.0)
        other_task_runs.set()
        await asyncio.sleep(0)  # another task works while this one waits
        await asyncio.sleep(0)
        self.cpu.work(1.0)

    async def handle(self, other_task_runs: asyncio.Event) -> None:
        self.cpu.work(5.0)
        await self.write(other_task_runs)


async def test_phases_are_exclusive_and_other_tasks_are_never_charged() -> None:
    cpu = WorkCounter()
    steps = Steps(cpu)
    clock = PhaseClock(cpu)
    other_task_runs = asyncio.Event()

    async def consumer() -> None:
        cpu.work(0.5)  # polling, outside any phase
        steps.decode()
        await steps.handle(other_task_runs)

    async def untimed_neighbour() -> None:
        await other_task_runs.wait()
        cpu.work(7.0)  # e.g. a driver callback or the broker client's fetcher

    phases: list[tuple[Any, str, str]] = [
        (Steps, "decode", "decode"),
        (Steps, "handle", "domain"),
        (Steps, "write", "write"),
    ]
    with clock.patch(phases), clock.process():
        await asyncio.gather(
            asyncio.create_task(clock.task(consumer(), "poll")),
            asyncio.create_task(untimed_neighbour()),
        )
    assert dict(clock.rows()) == {
        "poll": 0.5,
        "decode": 2.0,
        "domain": 5.0,  # the write inside it is charged to the write only
        "write": 4.0,  # before and after its await, not the neighbour's 7.0 meanwhile
        UNTIMED: 7.0,
    }
    assert "timed" not in Steps.decode.__qualname__, "the clock left a patched method behind"


class Ahead:
    """A consumer that starts its next poll as a task of its own (as the runtime does)."""

    def __init__(self, cpu: WorkCounter) -> None:
        self.cpu = cpu

    def decode(self) -> None:
        self.cpu.work(2.0)

    async def poll(self) -> None:
        self.cpu.work(0.25)
        self.decode()

    def poll_ahead(self) -> Coroutine[Any, Any, None]:
        return self.poll()


async def test_a_task_started_by_a_timed_task_through_a_task_phase_is_timed_too() -> None:
    cpu = WorkCounter()
    ahead = Ahead(cpu)
    clock = PhaseClock(cpu)

    async def consumer() -> None:
        cpu.work(0.5)
        await asyncio.create_task(ahead.poll_ahead())

    phases: list[tuple[Any, str, str]] = [
        (Ahead, "decode", "decode"),
        (Ahead, "poll_ahead", TaskPhase("poll")),
    ]
    with clock.patch(phases), clock.process():
        await asyncio.create_task(clock.task(consumer(), "poll"))
        cpu.work(4.0)  # outside every timed task
        await asyncio.create_task(ahead.poll_ahead())  # started by no timed task: untimed
    assert dict(clock.rows()) == {"poll": 0.75, "decode": 2.0, UNTIMED: 6.25}
    assert "adopt" not in Ahead.poll_ahead.__qualname__, "the clock left a patch behind"


class Batch:
    """A batch's path: a read that waits while another task runs, then its own work."""

    def __init__(self, wall: WorkCounter, cpu: WorkCounter) -> None:
        self.wall = wall
        self.cpu = cpu

    async def apply(self, reply: asyncio.Event) -> None:
        await self.read(reply)
        self.wall.work(2.0)  # computing
        self.cpu.work(2.0)
        await asyncio.create_task(self.write_beside())

    async def read(self, reply: asyncio.Event) -> None:
        await reply.wait()  # the statement's reply comes after the neighbour's 3.0

    async def write_beside(self) -> None:
        self.wall.work(0.5)
        self.cpu.work(0.5)


async def test_the_wait_clock_times_each_await_from_call_to_return_inside_the_phase_clock() -> None:
    wall, cpu = WorkCounter(), WorkCounter()
    batch = Batch(wall, cpu)
    waits, clock = WaitClock(wall), PhaseClock(cpu)
    reply = asyncio.Event()

    async def neighbour() -> None:  # the next batch's decode, while the read waits
        await asyncio.sleep(0)
        wall.work(3.0)
        cpu.work(3.0)
        reply.set()

    awaits: list[tuple[Any, str, str]] = [
        (Batch, "apply", "batch"),
        (Batch, "read", "read"),
        (Batch, "write_beside", "beside"),
    ]
    phases: list[tuple[Any, str, str]] = [
        (Batch, "apply", "domain"),
        (Batch, "write_beside", TaskPhase("early write")),
    ]
    with waits.patch(awaits), clock.patch(phases), clock.process():
        await asyncio.gather(
            asyncio.create_task(clock.task(batch.apply(reply), "poll")),
            asyncio.create_task(neighbour()),
        )
    assert dict(waits.wall) == {"batch": 5.5, "read": 3.0, "beside": 0.5}
    assert dict(waits.calls) == {"batch": 1, "read": 1, "beside": 1}
    # the phase clock still times the task started through its task phase
    assert dict(clock.rows()) == {"poll": 0.0, "domain": 2.0, "early write": 0.5, UNTIMED: 3.0}
    assert Batch.read.__qualname__ == "Batch.read", "the wait clock left a patch behind"


def test_the_wait_clock_refuses_what_is_not_a_coroutine_function() -> None:
    with pytest.raises(TypeError, match="not a coroutine function"):
        WaitClock().timed(Steps.decode, "decode")
