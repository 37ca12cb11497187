"""The per-phase table charges each phase only the CPU spent in it by its own task."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from bench.phases import UNTIMED, PhaseClock, TaskPhase


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
