"""CPU time per phase of the consumer's hot path, per event (the bench's main instrument).

Throughput on a shared two-core machine is noisy; the CPU this process spends in each
phase is not. A `PhaseClock` runs chosen tasks through a coroutine wrapper that reads
`time.process_time()` at every resumption and suspension of the task, so CPU spent by
*other* tasks or by event-loop callbacks while the task awaits is never charged to it.
Inside a task, named phases nest: a phase's CPU is its own (exclusive), the time of
phases inside it is charged to those. Phases are attached by wrapping module attributes
for the duration of a measurement (`clock.patch(...)`), so the service's code carries no
timing code of its own. What no timed task ran (the event loop, asyncpg's protocol
callbacks, aiokafka's background tasks, the garbage collector outside a step) is the
remainder of the process's CPU, printed as its own row.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections import defaultdict
from collections.abc import Callable, Coroutine, Generator, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

UNTIMED = "untimed: event loop, driver callbacks, broker client tasks"
POLL = "consumer: poll (getmany)"


class TaskPhase(str):
    """A phase name that marks a method returning a coroutine its caller runs as a task
    of its own (the consumer's poll ahead): when a timed task calls it, that coroutine
    is timed too, with this phase as its base, so its CPU is not left untimed."""


class _TimedTask(Coroutine[Any, Any, Any]):
    """A coroutine that charges the CPU of each of its steps to its innermost phase."""

    def __init__(self, coro: Coroutine[Any, Any, Any], clock: PhaseClock, base: str) -> None:
        self.coro = coro
        self.clock = clock
        self.stack = [base]
        self.mark = 0.0

    def send(self, value: Any) -> Any:
        return self._step(self.coro.send, value)

    def throw(self, *args: Any) -> Any:
        return self._step(self.coro.throw, *args)

    def close(self) -> None:
        self.coro.close()

    def __await__(self) -> Generator[Any, None, Any]:
        return self.coro.__await__()

    def _step(self, resume: Callable[..., Any], *args: Any) -> Any:
        clock = self.clock
        outer, clock.active = clock.active, self
        self.mark = clock.now()
        try:
            return resume(*args)
        finally:
            clock.cpu[self.stack[-1]] += clock.now() - self.mark
            clock.active = outer

    def enter(self, phase: str) -> None:
        now = self.clock.now()
        self.clock.cpu[self.stack[-1]] += now - self.mark
        self.mark = now
        self.stack.append(phase)

    def leave(self) -> None:
        now = self.clock.now()
        self.clock.cpu[self.stack.pop()] += now - self.mark
        self.mark = now


class PhaseClock:
    """Exclusive CPU seconds per phase of the tasks started through `task`."""

    def __init__(self, cpu_clock: Callable[[], float] = time.process_time) -> None:
        self.now = cpu_clock
        self.cpu: defaultdict[str, float] = defaultdict(float)
        self.order: list[str] = []
        self.active: _TimedTask | None = None
        self._process_started = 0.0
        self._process_cpu = 0.0

    def task(self, coro: Coroutine[Any, Any, Any], base: str) -> Coroutine[Any, Any, Any]:
        """`coro`, timed: CPU outside any named phase goes to `base`."""
        self._name(base)
        return _TimedTask(coro, self, base)

    @contextmanager
    def process(self) -> Iterator[None]:
        """Count the whole process's CPU while the block runs (for the untimed remainder)."""
        self._process_started = self.now()
        try:
            yield
        finally:
            self._process_cpu += self.now() - self._process_started

    @contextmanager
    def patch(self, phases: list[tuple[Any, str, str]]) -> Iterator[None]:
        """Time `owner.attribute` as `phase` for each (owner, attribute, phase), then undo."""
        with ExitStack() as undo:
            for owner, attribute, phase in phases:
                original = inspect.getattr_static(owner, attribute)
                fn = getattr(owner, attribute)
                wrapped = self.adopted(fn, phase) if isinstance(phase, TaskPhase) else None
                setattr(owner, attribute, wrapped or self.timed(fn, phase))
                undo.callback(setattr, owner, attribute, original)
            yield

    def timed(self, fn: Callable[..., Any], phase: str) -> Callable[..., Any]:
        """`fn` (sync or async) with its calls charged to `phase` inside a timed task."""
        self._name(phase)
        clock = self
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                task = clock.active
                if task is None:
                    return await fn(*args, **kwargs)
                task.enter(phase)
                try:
                    return await fn(*args, **kwargs)
                finally:
                    task.leave()

            return timed_async

        @functools.wraps(fn)
        def timed_sync(*args: Any, **kwargs: Any) -> Any:
            task = clock.active
            if task is None:
                return fn(*args, **kwargs)
            task.enter(phase)
            try:
                return fn(*args, **kwargs)
            finally:
                task.leave()

        return timed_sync

    def adopted(self, fn: Callable[..., Any], base: str) -> Callable[..., Any]:
        """`fn` (returning a coroutine) with that coroutine timed, base `base`, when a
        timed task calls it."""
        clock = self

        @functools.wraps(fn)
        def adopt(*args: Any, **kwargs: Any) -> Any:
            coro = fn(*args, **kwargs)
            return coro if clock.active is None else clock.task(coro, base)

        return adopt

    def _name(self, phase: str) -> None:
        if phase not in self.order:
            self.order.append(phase)

    def rows(self) -> list[tuple[str, float]]:
        """(phase, CPU seconds) in first-named order, then the untimed remainder."""
        rows = [(phase, self.cpu.get(phase, 0.0)) for phase in self.order]
        timed = sum(seconds for _, seconds in rows)
        if self._process_cpu:
            rows.append((UNTIMED, max(self._process_cpu - timed, 0.0)))
        return rows


class WaitClock:
    """Wall seconds spent in chosen coroutine functions, from call to return.

    The CPU table says what each phase costs this process, not where a batch waits. The
    consumer's loop waits for each batch's apply and commit, and while the batch awaits
    PostgreSQL the next batch decodes and the relay runs in the same process: the wall
    time of each await on the batch's path says which statements hold the batch up, and
    which of its time is its own computing. Patch it before the `PhaseClock` (inside
    it), so that the phase clock's wrappers drive these ones.
    """

    def __init__(self, wall_clock: Callable[[], float] = time.perf_counter) -> None:
        self.now = wall_clock
        self.wall: defaultdict[str, float] = defaultdict(float)
        self.calls: defaultdict[str, int] = defaultdict(int)

    @contextmanager
    def patch(self, awaits: list[tuple[Any, str, str]]) -> Iterator[None]:
        """Time `owner.attribute` (a coroutine function) under `label` for each (owner,
        attribute, label), then undo."""
        with ExitStack() as undo:
            for owner, attribute, label in awaits:
                original = inspect.getattr_static(owner, attribute)
                setattr(owner, attribute, self.timed(getattr(owner, attribute), label))
                undo.callback(setattr, owner, attribute, original)
            yield

    def timed(self, fn: Callable[..., Any], label: str) -> Callable[..., Any]:
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"{label}: {fn!r} is not a coroutine function")
        clock = self

        @functools.wraps(fn)
        async def waited(*args: Any, **kwargs: Any) -> Any:
            started = clock.now()
            try:
                return await fn(*args, **kwargs)
            finally:
                clock.wall[label] += clock.now() - started
                clock.calls[label] += 1

        return waited


def runtime_phases() -> tuple[list[tuple[Any, str, str]], list[tuple[Any, str, str]]]:
    """The consumer runtime's phases: (those before the handler, those after it).

    Imported here, not at the top: the runtime pulls in every contract and the broker
    client, which a bench section that never runs a consumer does not need.
    """
    from shared.kafka import runtime
    from shared.kafka.runtime import BatchApplier, EventConsumer
    from shared.outbox import OutboxWriter

    before = [
        (runtime, "decode_records", "decode + validate (runtime.decode_records)"),
        (EventConsumer, "_poll_ahead", TaskPhase(POLL)),
        (runtime, "dedupe_within_batch", "dedupe: within the batch"),
        (BatchApplier, "_record_processed", "dedupe: insert processed_events"),
        (BatchApplier, "_conflicts", "dedupe: payload conflicts"),
        (BatchApplier, "_dispatch", "handler: dispatch, and handler work not timed below"),
    ]
    after = [
        (OutboxWriter, "flush", "write: outbox rows"),
        (BatchApplier, "_dead_letter", "write: dead letters"),
        (BatchApplier, "apply", "runtime: apply bookkeeping"),
        (EventConsumer, "_apply_with_retries", "transaction: begin + commit"),
        (EventConsumer, "_commit_offsets", "offset commit"),
        (EventConsumer, "process", "runtime: batch bookkeeping (metrics, lag)"),
        (runtime, "_release", "runtime: free the last batch (in the poll ahead)"),
    ]
    return before, after


def print_phases(title: str, clock: PhaseClock, events: int) -> dict[str, float]:
    """The per-phase table in CPU µs per event; returns {phase: µs per event}."""
    rows = clock.rows()
    total = sum(seconds for _, seconds in rows)
    print()
    print(f"{title}: CPU of this process per event, by phase ({events:,} events)")
    header = f"{'phase':<62} {'µs/event':>9} {'share':>6}"
    print(header)
    print("-" * len(header))
    figures: dict[str, float] = {}
    for phase, seconds in rows:
        per_event = seconds / events * 1e6 if events else 0.0
        share = seconds / total if total else 0.0
        print(f"{phase:<62} {per_event:>9.1f} {share:>6.1%}")
        figures[phase] = round(per_event, 2)
    print(f"{'total':<62} {total / events * 1e6 if events else 0.0:>9.1f}")
    print(
        "exclusive CPU (time.process_time) of each phase; PostgreSQL's and the broker's own "
        "CPU are in other processes and not counted"
    )
    return figures
