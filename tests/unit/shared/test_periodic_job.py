"""The one periodic loop every service's jobs run on (shared.jobs.PeriodicJob)."""

from __future__ import annotations

import asyncio

import pytest

from shared.jobs import PeriodicJob


async def test_a_job_ticks_until_stopped_and_counts_its_ticks() -> None:
    seen: list[int] = []
    job: PeriodicJob

    async def tick() -> None:
        seen.append(len(seen))
        if len(seen) == 3:
            job.stop()
        else:
            job.wake()  # no waiting between ticks in a test

    job = PeriodicJob("counting", tick, interval_seconds=3600)
    await asyncio.wait_for(job.run(), timeout=5)
    assert seen == [0, 1, 2], "the job ran three ticks, then stopped when asked"
    assert job.ticks == 3


async def test_a_transient_fault_waits_for_the_next_tick() -> None:
    calls = 0
    job: PeriodicJob

    async def tick() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionRefusedError("database restarting")
        job.stop()

    job = PeriodicJob("flaky", tick, interval_seconds=0.01)
    await asyncio.wait_for(job.run(), timeout=5)
    assert calls == 2, "a transient fault must be retried at the next tick, not end the job"
    assert job.ticks == 1


async def test_a_bug_ends_the_job_so_the_board_reports_it() -> None:
    async def tick() -> None:
        raise KeyError("a bug, not an outage")

    job = PeriodicJob("buggy", tick, interval_seconds=0.01)
    with pytest.raises(KeyError):
        await asyncio.wait_for(job.run(), timeout=5)


async def test_the_first_tick_waits_for_the_start_check() -> None:
    order: list[str] = []
    job: PeriodicJob

    async def check() -> None:
        order.append("check")

    async def tick() -> None:
        order.append("tick")
        job.stop()

    job = PeriodicJob("checked", tick, interval_seconds=1, before_first_tick=check)
    await asyncio.wait_for(job.run(), timeout=5)
    assert order == ["check", "tick"]


def test_an_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="interval_seconds"):
        PeriodicJob("never", lambda: asyncio.sleep(0), interval_seconds=0)
