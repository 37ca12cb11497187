"""A fresh migrated rewards database per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.infra import Databases


@pytest.fixture
async def rewards_db(databases: Databases) -> AsyncIterator[str]:
    yield await databases.fresh("rewards")
