"""A service's background work inside its FastAPI lifespan: the outbox relay and its workers.

Every service runs the same shape: a producer and an `OutboxRelay` (registered for
`/metrics`), then its consumer, scanners and periodic jobs as asyncio tasks, each woken
or stopped alike. Shutdown order matters for delivery: stop the workers first (the
consumer finishes and commits its batch in flight), then the relay, then one last relay
pass so what they committed goes out now rather than at the next start, then the producer.

A `WorkerBoard` (registered for `/healthz` and `/readyz`) keeps each task's state:
`running`, `stopped` (it ended after shutdown asked it to, or was cancelled), or
`crashed` with the error's first line (it raised, or returned without being asked).
Nothing restarts a crashed task in-process, so a crash fails readiness *and* liveness
(shared.http.app says why); the full traceback goes to the log at CRITICAL.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI

from shared.http.app import register_outbox_relay, register_workers
from shared.kafka.dedupe import pruner_for
from shared.kafka.runtime import utc_now
from shared.outbox import OutboxRelay, relay_producer
from shared.settings import KafkaSettings

log = logging.getLogger(__name__)
DRAIN_SECONDS = 5.0
ERROR_TEXT_LIMIT = 200  # the traceback is in the log; the probe body gets a short line

RUNNING, STOPPED, CRASHED = "running", "stopped", "crashed"


@dataclass(frozen=True)
class Worker:
    """One long-running task: how to run it and how to ask it to finish."""

    name: str
    run: Callable[[], Coroutine[Any, Any, None]]
    stop: Callable[[], None]


@dataclass
class _Task:
    state: str = RUNNING
    error: str | None = None
    stop_requested: bool = False


def _error_text(exc: BaseException) -> str:
    """Type and first message line: SQLAlchemy puts SQL and parameters on later lines."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return text if len(text) <= ERROR_TEXT_LIMIT else text[: ERROR_TEXT_LIMIT - 3] + "..."


class WorkerBoard:
    """The state of each of a service's worker tasks, as `/healthz` and `/readyz` show it."""

    def __init__(self, service: str) -> None:
        self.service = service
        self._tasks: dict[str, _Task] = {}

    def start(self, name: str, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run `work` as task `name`; its end is recorded (and a crash logged) at once."""
        self._tasks[name] = _Task()
        task = asyncio.create_task(work, name=f"{self.service}-{name}")
        task.add_done_callback(lambda done: self._ended(name, done))
        return task

    def stop_requested(self, name: str) -> None:
        """Shutdown asked `name` to finish: its end from now on is a stop, not a crash."""
        self._tasks[name].stop_requested = True

    def states(self) -> dict[str, dict[str, str]]:
        """Each task's state, with the error of a crashed one."""
        return {
            name: {"state": task.state, **({"error": task.error} if task.error else {})}
            for name, task in self._tasks.items()
        }

    def crashed(self) -> dict[str, str]:
        """The tasks that died on their own, with their errors."""
        return {
            name: task.error or CRASHED
            for name, task in self._tasks.items()
            if task.state == CRASHED
        }

    def _ended(self, name: str, task: asyncio.Task[None]) -> None:
        record = self._tasks[name]
        error = None if task.cancelled() else task.exception()
        if error is not None:
            log.critical("%s %s stopped: %r", self.service, name, error, exc_info=error)
        if record.stop_requested or task.cancelled():
            record.state = STOPPED
            return
        record.state = CRASHED
        if error is not None:
            record.error = _error_text(error)
        else:
            record.error = "returned without being asked to stop"
            log.critical("%s %s %s", self.service, name, record.error)


@asynccontextmanager
async def service_workers(
    app: FastAPI,
    service: str,
    kafka: KafkaSettings,
    *,
    outbox_batch: int,
    workers: Callable[[OutboxRelay], Sequence[Worker]],
    relay_label: str | None = None,
) -> AsyncIterator[OutboxRelay]:
    """Run the relay and `workers(relay)` until the app shuts down, then stop them in order.

    `relay_label` names the relay in metrics (default: the service name).
    """
    producer = await relay_producer(
        kafka.bootstrap_servers, f"{kafka.client_id_prefix}-{service}-relay", kafka.idempotence
    )
    try:
        relay = OutboxRelay(
            app.state.engine,
            producer,
            service=relay_label or service,
            batch_size=outbox_batch,
        )
        register_outbox_relay(app, relay)
        board = WorkerBoard(service)
        register_workers(app, board)
        running = [*workers(relay), _dedupe_pruner(app, kafka)]
        _names_are_unique(service, running)
        relay_task = board.start("relay", relay.run())
        tasks = [board.start(worker.name, worker.run()) for worker in running]
        try:
            yield relay
        finally:
            for worker in running:
                board.stop_requested(worker.name)
                worker.stop()
            await asyncio.gather(*tasks, return_exceptions=True)
            board.stop_requested("relay")
            relay.stop()
            await asyncio.gather(relay_task, return_exceptions=True)
            await _drain(service, relay)
    finally:
        await producer.stop()


def _dedupe_pruner(app: FastAPI, kafka: KafkaSettings) -> Worker:
    """Every service prunes its processed-event ids past the retention (shared.kafka.dedupe)."""
    pruner = pruner_for(app.state.engine, app.state.settings, kafka.bootstrap_servers, utc_now)
    return Worker("dedupe-pruner", pruner.run, pruner.stop)


def _names_are_unique(service: str, workers: Sequence[Worker]) -> None:
    """Checked before any task starts: `/readyz` names each worker, so no two may share one."""
    names = ["relay", *(worker.name for worker in workers)]
    if len(set(names)) != len(names):
        raise ValueError(f"{service} worker names must be unique (relay included): {names}")


async def _drain(service: str, relay: OutboxRelay) -> None:
    """One last relay pass; what it cannot send stays in the outbox for the next start."""
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            while await relay.relay_once() == relay.batch_size:
                pass
    except Exception as exc:
        log.warning("%s outbox not drained at shutdown (kept for the next start): %r", service, exc)
