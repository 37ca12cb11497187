"""The alerts tables the code queries are the tables its migrations build."""

from __future__ import annotations

import pytest

from services.alerts.db import metadata
from shared.db import foundation
from tests.support.schema_drift import schema_drift

pytestmark = pytest.mark.integration


async def test_migration_creates_what_the_code_queries(alerts_db: str) -> None:
    """services/alerts/db.py and the foundation tables (api_keys, outbox, processed_events,
    dead_letters) against a database migrated to the alerts head."""
    differences = await schema_drift(alerts_db, metadata, foundation)
    assert differences == [], "services/alerts/db.py and the alerts migrations disagree:\n" + (
        "\n".join(differences)
    )
