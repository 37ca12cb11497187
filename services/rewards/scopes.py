"""The rewards service's API-key scopes, and the principals its routes require.

`Scope.ADMIN` stays in `shared.auth`; every rewards admin route spans the programme (any
merchant's policies, caps and held compensations, the catalogue, the referral programme),
so a key bound to one merchant may not use them.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from shared.auth import ApiPrincipal, Scope
from shared.http.security import require, require_programme_admin

REWARDS_READ = Scope("rewards:read")
REWARDS_CLAIM = Scope("rewards:claim")
CLAIMS_FILE = Scope("claims:file")
SCOPES = (REWARDS_READ, REWARDS_CLAIM, CLAIMS_FILE)

programme_admin = require_programme_admin(
    "rewards admin routes span every merchant of the programme; a key bound to "
    "merchant {merchant} may not use them"
)
Read = Annotated[ApiPrincipal, Depends(require(REWARDS_READ))]
Claim = Annotated[ApiPrincipal, Depends(require(REWARDS_CLAIM))]
File = Annotated[ApiPrincipal, Depends(require(CLAIMS_FILE))]
Admin = Annotated[ApiPrincipal, Depends(programme_admin)]
