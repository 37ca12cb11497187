"""Every service's API-key scopes, the ones the tooling issues keys with.

A key is stored in one service's database, but `loyalty keys create` accepts the scopes of
all three (as before the services declared their own), so an operator's typo is refused by
name whichever service the key is for.
"""

from __future__ import annotations

from services.alerts.scopes import SCOPES as ALERTS_SCOPES
from services.points.scopes import SCOPES as POINTS_SCOPES
from services.rewards.scopes import SCOPES as REWARDS_SCOPES
from shared.auth import Scope, known_scopes, register_scopes

SERVICE_SCOPES: dict[str, tuple[Scope, ...]] = {
    "points": POINTS_SCOPES,
    "rewards": REWARDS_SCOPES,
    "alerts": ALERTS_SCOPES,
}


def register_service_scopes() -> tuple[Scope, ...]:
    """Make every service's scopes known to `shared.auth.parse_scopes`; returns every scope
    a key may then be issued with (`admin` last)."""
    register_scopes(*(scope for scopes in SERVICE_SCOPES.values() for scope in scopes))
    return known_scopes()
