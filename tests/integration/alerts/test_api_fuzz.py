"""Schemathesis over the alerts OpenAPI document: whatever it sends, no 5xx, and every error
is problem+json. The service runs under uvicorn in a thread, on a real migrated database with
some alerts, customers and a model in it, called with an admin key (every route reachable)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from services.alerts.app import build_app
from services.alerts.clock.service import FixedClock
from services.alerts.settings import AlertsSettings
from shared.auth import Scope, create_key
from shared.db import create_engine
from shared.http import PROBLEM_JSON
from shared.settings import KafkaSettings
from tests.integration.alerts.conftest import day
from tests.integration.alerts.test_replay_and_concurrency import _weekly_activity
from tests.support.fuzzing import (
    FUZZ_LIMITS,
    FuzzCase,
    Operation,
    operations_of,
    run_schemathesis,
)
from tests.support.infra import Databases, Infra, free_port

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class FuzzTarget:
    base_url: str
    headers: dict[str, str]


@pytest.fixture(scope="module")
async def fuzz_db(databases: Databases) -> AsyncIterator[tuple[str, dict[str, str]]]:
    """A database with 30 customers, a scan's worth of alerts and an admin key."""
    from services.alerts.activity.repository import ActivityRepository
    from services.alerts.lapse.service import AlertScanner

    url = await databases.fresh("alerts")
    engine = create_engine(url, pool_size=2)
    try:
        async with engine.begin() as conn:
            await ActivityRepository(conn).save(
                [_weekly_activity(f"fz-{i:02d}") for i in range(30)]
            )
            issued = await create_key(conn, "fuzzer", [Scope.ADMIN])
        await AlertScanner(engine, FixedClock(day(60))).scan_due(day(60))
    finally:
        await engine.dispose()
    yield url, {"Authorization": f"Bearer {issued.plaintext}"}


@pytest.fixture(scope="module")
def fuzz_target(infra: Infra, fuzz_db: tuple[str, dict[str, str]]) -> Iterator[FuzzTarget]:
    url, headers = fuzz_db
    app = build_app(
        AlertsSettings(database_url=url, run_workers=False, **FUZZ_LIMITS),
        kafka=KafkaSettings(bootstrap_servers=infra.bootstrap_servers),
        clock=FixedClock(day(60)),
    )
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the alerts app did not start"
        time.sleep(0.05)
    try:
        yield FuzzTarget(f"http://127.0.0.1:{port}", headers)
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def test_the_alerts_api_never_answers_5xx(fuzz_target: FuzzTarget) -> None:
    schema = schemathesis.openapi.from_url(f"{fuzz_target.base_url}/openapi.json")
    operations = operations_of(schema.include(path_regex="^/v1/"))
    assert len(operations) == 9, f"every alerts route should be fuzzed: {operations}"
    statuses: Counter[int] = Counter()
    for operation in operations:
        _fuzz(operation, fuzz_target, statuses)
    assert statuses[401] == 0, "the fuzzer must call with the admin key, not be turned away"
    assert sum(n for status, n in statuses.items() if status < 300) > 0, statuses


def _fuzz(operation: Operation, target: FuzzTarget, statuses: Counter[int]) -> None:
    @given(case=operation.as_strategy())
    @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
    def no_server_error(case: FuzzCase) -> None:
        response = case.call_and_validate(
            base_url=target.base_url, headers=target.headers, checks=[not_a_server_error]
        )
        statuses[response.status_code] += 1
        if response.status_code >= 400:
            assert response.headers["content-type"] == [PROBLEM_JSON], (
                f"{case.method} {case.formatted_path} -> {response.status_code} is not problem+json"
            )

    no_server_error()


def test_every_phase_finds_no_5xx_and_nothing_undocumented(
    fuzz_target: FuzzTarget, tmp_path: Path
) -> None:
    """Examples, coverage, fuzzing and stateful phases: no 5xx, and every status code and
    content type answered is one the alerts OpenAPI declares for that operation."""
    token = fuzz_target.headers["Authorization"].removeprefix("Bearer ")
    code, report = run_schemathesis(fuzz_target.base_url, token, tmp_path)
    assert code == 0, f"schemathesis found problems in the alerts API:\n{report[-15000:]}"
