"""Schemathesis over the points OpenAPI: every operation, fuzzed with an admin key against
the real app (uvicorn on a free port) and a real database, must never answer 5xx.

A few customers hold points first, so the generated requests also reach the deeper paths
(redemptions that succeed, ledgers with entries, invariant reports with customers).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation.modes import GenerationMode

from services.points.adjustments.service import Adjustment, adjust_points
from services.points.app import build_app
from services.points.settings import PointsSettings
from services.points.uow import PointsUnitOfWork
from shared.auth import Scope, create_key
from shared.db import create_engine
from shared.settings import KafkaSettings
from tests.support.fuzzing import (
    FUZZ_LIMITS,
    FuzzCase,
    Operation,
    operations_of,
    run_schemathesis,
)
from tests.support.infra import Databases, Infra, free_port

pytestmark = pytest.mark.integration

POSITIVE, NEGATIVE = 30, 15  # examples per operation and mode: well under a minute


@pytest.fixture(scope="module")
async def fuzz_target(databases: Databases) -> AsyncIterator[tuple[str, str]]:
    """A fresh database with a few funded customers, and an admin key for it."""
    url = await databases.fresh("points")
    engine = create_engine(url, pool_size=1)
    try:
        async with PointsUnitOfWork.begin(engine, lambda: datetime.now(UTC)) as uow:
            token = (await create_key(uow.conn, "fuzzer", [Scope.ADMIN])).plaintext
            for customer in ("a", "0", "fuzz-1"):
                gift = Adjustment(f"seed-{customer}", 1_000, "fuzz seed", "fuzzer")
                await adjust_points(uow, customer, gift)
    finally:
        await engine.dispose()
    yield url, token


@pytest.fixture(scope="module")
def points_server(infra: Infra, fuzz_target: tuple[str, str]) -> Iterator[str]:
    """The points app served over real HTTP from a thread with its own event loop."""
    url, _ = fuzz_target
    port = free_port()
    app = build_app(
        PointsSettings(database_url=url, run_workers=False, **FUZZ_LIMITS),
        kafka=KafkaSettings(bootstrap_servers=infra.bootstrap_servers),
    )
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="points-fuzz-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the points app did not start within 20s"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=20)


def _fuzz(
    operation: Operation, mode: GenerationMode, examples: int, token: str, seen: Counter[str]
) -> str | None:
    """Run `examples` generated requests; the first 5xx found (shrunk), or None."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def no_server_error(case: FuzzCase) -> None:
        response = case.call(headers={"Authorization": f"Bearer {token}"})
        seen[f"{operation.label} {response.status_code}"] += 1
        assert response.status_code < 500, (
            f"{operation.label} ({mode}) answered {response.status_code}: "
            f"{response.text[:300]}\nreproduce with: {case.as_curl_command()}"
        )

    try:
        no_server_error()
    except AssertionError as failure:
        return str(failure)
    except Unsatisfiable:
        assert mode is GenerationMode.NEGATIVE, f"{operation.label}: no valid request exists"
        # An operation with no parameters and no body has no schema-breaking request.
    return None


def test_no_operation_answers_5xx(points_server: str, fuzz_target: tuple[str, str]) -> None:
    """Positive (schema-valid) and negative (schema-breaking) requests for every operation.

    (Schemathesis' own pytest loader is not used: its lazy fixture form breaks on pytest 9.)
    """
    _, token = fuzz_target
    schema = schemathesis.openapi.from_url(f"{points_server}/openapi.json")
    operations = operations_of(schema)
    assert len(operations) >= 12, "every partner and admin operation is fuzzed"
    seen: Counter[str] = Counter()
    modes = ((GenerationMode.POSITIVE, POSITIVE), (GenerationMode.NEGATIVE, NEGATIVE))
    failures = [
        failure
        for operation in operations
        for mode, examples in modes
        if (failure := _fuzz(operation, mode, examples, token, seen)) is not None
    ]
    print("\n".join(f"{n:4} {what}" for what, n in sorted(seen.items())))
    assert not failures, "server errors found:\n" + "\n\n".join(failures)
    assert sum(n for what, n in seen.items() if what.endswith(("200", "201"))) >= 20, (
        f"the fuzzer should also get through authentication and validation: {seen}"
    )


def test_every_phase_finds_no_5xx_and_nothing_undocumented(
    points_server: str, fuzz_target: tuple[str, str], tmp_path: Path
) -> None:
    """Examples, coverage, fuzzing and stateful phases: no 5xx, and every status code and
    content type answered is one the points OpenAPI declares for that operation."""
    _, token = fuzz_target
    code, report = run_schemathesis(points_server, token, tmp_path)
    assert code == 0, f"schemathesis found problems in the points API:\n{report[-15000:]}"
