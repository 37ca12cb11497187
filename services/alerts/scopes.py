"""The alerts service's API-key scopes, and the guards its routes declare with them.

- `alerts:read`: list alerts, read a customer's activity, run a backtest, and ACKNOWLEDGE an
  alert. The people who read the at-risk list are the ones who call the customer, so
  acknowledging is part of reading it; a dedicated scope would only be handed out together
  with this one. The extra check: a key bound to a merchant sees and acknowledges only that
  merchant's alerts (the alert's merchant is the customer's home merchant) and only
  customers who bought there.
- `admin` (`Scope.ADMIN`, shared): thresholds, the model and the invariant check. They span
  the programme, so a key bound to one merchant may not use them: it could silence another
  merchant's lapse warnings.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends
from pydantic import BaseModel, ConfigDict

from shared.auth import ApiPrincipal, Scope
from shared.http import PROBLEM_JSON, require
from shared.http.security import require_programme_admin

ALERTS_READ = Scope("alerts:read")
SCOPES = (ALERTS_READ,)

Reader = Annotated[ApiPrincipal, Depends(require(ALERTS_READ))]

programme_admin = require_programme_admin(
    "alerts admin routes span every merchant of the programme; a key bound to "
    "merchant {merchant} may not use them"
)
Admin = Annotated[ApiPrincipal, Depends(programme_admin)]


class ProblemOut(BaseModel):
    """An `application/problem+json` error (RFC 9457); branch on `code`, show `detail`."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    code: str
    detail: str | None = None
    instance: str | None = None


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` of a guarded route: 401, 403, 422 and `statuses`."""
    return {
        status: {"model": ProblemOut, "content": {PROBLEM_JSON: {}}}
        for status in (401, 403, 422, *statuses)
    }
