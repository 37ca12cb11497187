"""A hostile partner's admin key against the alerts service, on the real database."""

from __future__ import annotations

import pytest

from services.alerts.clock.service import FixedClock
from shared.auth import Scope, create_key
from tests.integration.alerts.conftest import AlertsHarness, api_client, day, make_keys, problem

pytestmark = pytest.mark.integration


async def test_an_admin_key_bound_to_one_merchant_cannot_change_the_programmes_thresholds(
    harness: AlertsHarness, unique: str
) -> None:
    """Thresholds, the model and the invariant check span every merchant: a key bound to
    merchant m2 could silence another merchant's lapse warnings (or everyone's, through the
    default scope). Every admin route answers it 403 `merchant_bound_key`; nothing is
    stored; an unbound admin key still works."""
    async with harness.engine.begin() as conn:
        issued = await create_key(conn, "m2 admin", [Scope.ADMIN], "m2")
    bound = {"Authorization": f"Bearer {issued.plaintext}"}
    async with api_client(harness.infra, harness.db_url, FixedClock(day(10))) as client:
        keys = await make_keys(harness.engine)
        silence = {"inactivity_window_days": 3650}
        for change in (
            {"scope": "merchant", "scope_id": "m1", "settings": silence},
            {"scope": "default", "settings": silence},
        ):
            answer = await client.put("/v1/admin/thresholds", json=change, headers=bound)
            problem(answer, 403, "merchant_bound_key")
        for path in ("/v1/admin/thresholds", "/v1/admin/model", "/v1/admin/invariants"):
            problem(await client.get(path, headers=bound), 403, "merchant_bound_key")
        listed = await client.get("/v1/admin/thresholds", headers=keys.admin)
        assert listed.status_code == 200, listed.text
        assert listed.json()["scopes"] == [], "no threshold was stored"
