"""FastAPI dependencies for API keys: who is calling, and may they do this?

    POINTS_READ = Scope("points:read")  # declared in the service's scopes.py

    @router.get("/merchants/{merchant_id}/balances/{customer_id}")
    async def balance(
        merchant_id: str, principal: ApiPrincipal = Depends(require(POINTS_READ))
    ) -> ...:
        ensure_merchant(principal, merchant_id)

401 when the key is missing, malformed, wrong or revoked (with `WWW-Authenticate:
Bearer`); 403 when the key lacks the scope, or is bound to another merchant.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.auth import ApiKeyAuthenticator, ApiPrincipal, Scope
from shared.errors import Forbidden
from shared.http.gate import gate_principal

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key from `loyalty keys create`, sent as `Authorization: Bearer lk_...`.",
)

Requirement = Callable[[Request, HTTPAuthorizationCredentials | None], Awaitable[ApiPrincipal]]


def authenticator(request: Request) -> ApiKeyAuthenticator:
    """The app's authenticator, made on first use from `app.state.engine` if the app has none."""
    state = request.app.state
    existing = getattr(state, "authenticator", None)
    if isinstance(existing, ApiKeyAuthenticator):
        return existing
    created = ApiKeyAuthenticator(state.engine)
    state.authenticator = created
    return created


def require(scope: Scope) -> Requirement:
    """A dependency returning the caller's principal when its key grants `scope`."""

    async def principal_with_scope(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
    ) -> ApiPrincipal:
        principal = gate_principal(request.scope)
        if principal is None:  # an app without the gate (shared.http.gate) checks here
            bearer = credentials.credentials if credentials is not None else None
            principal = await authenticator(request).authenticate(bearer)
        if not principal.allows(scope):
            raise Forbidden(
                f"this API key lacks the scope {scope.value}",
                code="scope_missing",
                required_scope=scope.value,
            )
        request.state.principal = principal
        return principal

    principal_with_scope.required_scope = scope  # type: ignore[attr-defined]  # read by the gate
    return principal_with_scope


def require_programme_admin(refusal: str) -> Callable[..., Awaitable[ApiPrincipal]]:
    """A dependency for admin routes that span every merchant of the programme: the caller's
    principal when its admin key is bound to no merchant. A key bound to one merchant could
    otherwise change or pay out for another: 403 `merchant_bound_key`, with `refusal` as the
    detail (`{merchant}` stands for the key's merchant)."""
    admin = require(Scope.ADMIN)

    async def programme_admin(principal: ApiPrincipal = Depends(admin)) -> ApiPrincipal:
        if principal.merchant_id is not None:
            raise Forbidden(
                refusal.format(merchant=principal.merchant_id),
                code="merchant_bound_key",
                merchant_id=principal.merchant_id,
            )
        return principal

    return programme_admin


def ensure_merchant(principal: ApiPrincipal, merchant_id: str) -> None:
    """Refuse (403) a key bound to one merchant acting for another."""
    if not principal.may_act_for(merchant_id):
        raise Forbidden(
            "this API key is bound to another merchant",
            code="merchant_mismatch",
            merchant_id=merchant_id,
        )
