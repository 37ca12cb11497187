"""The points service's API-key scopes (`admin`, which implies every scope, stays in shared),
and the dependencies its admin routes require them with."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from shared.auth import ApiPrincipal, Scope
from shared.http.security import require, require_programme_admin

POINTS_READ = Scope("points:read")  # balances and ledger history
POINTS_REDEEM = Scope("points:redeem")  # redemptions and their cancellation
SCOPES = (POINTS_READ, POINTS_REDEEM)

Admin = Annotated[ApiPrincipal, Depends(require(Scope.ADMIN))]
# What a programme admin sees and changes spans every partner.
programme_admin = require_programme_admin(
    "this route spans every merchant of the programme; a key bound to merchant "
    "{merchant} may not use it"
)
ProgrammeAdmin = Annotated[ApiPrincipal, Depends(programme_admin)]
