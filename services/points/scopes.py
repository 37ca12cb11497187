"""The points service's API-key scopes (`admin`, which implies them all, is the chassis')."""

from shared.auth import Scope

POINTS_READ = Scope("points:read")  # balances and ledgers
POINTS_REDEEM = Scope("points:redeem")  # redeem points and cancel a redemption

SCOPES = (POINTS_READ, POINTS_REDEEM)
