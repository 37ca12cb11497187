"""Session-wide fixtures: the broker, PostgreSQL and fresh databases and topics."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.infra import Databases, Infra, start_test_infra
from tooling.scopes import register_service_scopes

# Tests issue keys as the `loyalty` CLI does: with every service's scopes known to the chassis.
register_service_scopes()


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infra]:
    with start_test_infra(Path(tmp_path_factory.mktemp("loyalty"))) as running:
        yield running


@pytest.fixture(scope="session")
def databases(infra: Infra) -> Databases:
    return Databases(infra)


@pytest.fixture
def unique() -> str:
    """A short unique suffix for topic and group names: tests never share dirty state."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
async def points_db(databases: Databases) -> AsyncIterator[str]:
    yield await databases.fresh("points")
