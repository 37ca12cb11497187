"""schemathesis fuzzes every rewards route, positive and negative inputs, against the real
service on the real PostgreSQL: no input may produce a 5xx."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import requests
import uvicorn
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode, openapi

from services.rewards.app import build_app
from services.rewards.settings import RewardsSettings
from shared.auth import create_key
from shared.db import create_engine
from shared.settings import KafkaSettings
from tests.support.fuzzing import (
    FUZZ_LIMITS,
    FuzzCase,
    Operation,
    operations_of,
    run_schemathesis,
)
from tests.support.infra import Infra, free_port

pytestmark = pytest.mark.integration
EXAMPLES_PER_OPERATION = 25


def _fuzz_operation(operation: Operation, base_url: str, headers: dict[str, str]) -> list[str]:
    """Run schemathesis cases for one operation in this thread; returns the 5xx seen."""
    failures: list[str] = []
    session = requests.Session()
    strategy = operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(
        GenerationMode.NEGATIVE
    )

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(strategy)
    def run(case: FuzzCase) -> None:
        response = case.call(base_url=base_url, session=session, headers=headers, timeout=10)
        if response.status_code >= 500:
            failures.append(
                f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:200]}"
            )

    run()
    return failures


async def test_no_input_makes_the_rewards_api_fail(infra: Infra, rewards_db: str) -> None:
    engine = create_engine(rewards_db, pool_size=1)
    async with engine.begin() as conn:
        key = await create_key(conn, "fuzz", ["admin"])
    await engine.dispose()
    app = build_app(
        RewardsSettings(database_url=rewards_db, run_workers=False, claim_wait_seconds=0),
        kafka=KafkaSettings(bootstrap_servers=infra.bootstrap_servers),
    )
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.05)
        schema = openapi.from_dict(app.openapi())
        base_url = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {key.plaintext}"}
        failures: list[str] = []
        operations = operations_of(schema)
        assert len(operations) >= 20, "every route is fuzzed"
        for operation in operations:
            failures += await asyncio.to_thread(_fuzz_operation, operation, base_url, headers)
        assert failures == [], "server errors:\n" + "\n".join(failures[:20])
    finally:
        server.should_exit = True
        await serving


async def test_every_phase_finds_no_5xx_and_nothing_undocumented(
    infra: Infra, rewards_db: str, tmp_path: Path
) -> None:
    """Examples, coverage, fuzzing and stateful phases: no 5xx, and every status code and
    content type answered is one the rewards OpenAPI declares for that operation."""
    engine = create_engine(rewards_db, pool_size=1)
    async with engine.begin() as conn:
        key = await create_key(conn, "fuzz", ["admin"])
    await engine.dispose()
    app = build_app(
        RewardsSettings(
            database_url=rewards_db, run_workers=False, claim_wait_seconds=0, **FUZZ_LIMITS
        ),
        kafka=KafkaSettings(bootstrap_servers=infra.bootstrap_servers),
    )
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.05)
        code, report = await asyncio.to_thread(
            run_schemathesis, f"http://127.0.0.1:{port}", key.plaintext, tmp_path
        )
        assert code == 0, f"schemathesis found problems in the rewards API:\n{report[-15000:]}"
    finally:
        server.should_exit = True
        await serving
