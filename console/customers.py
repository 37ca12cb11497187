"""A customer on one page: balance, ledger (paged, filtered), vouchers, claims, activity.

Each section is fetched on its own: a key that may read one service but not another still
sees what it may, and the section it may not read says why, in the service's words. A
merchant-bound key that the alerts service refuses for this customer (never bought at its
merchant) is refused the whole page: the customer is not theirs.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from console.gateway import Gateway, NoKey, ServiceRefused
from console.sessions import Session
from console.web import gateway_of, render, signed_in

router = APIRouter()

CUSTOMER_ID = re.compile(r"^[A-Za-z0-9._:@-]{1,64}$")
LEDGER_KINDS = (
    "accrual",
    "reversal",
    "redemption",
    "redemption_cancel",
    "expiry",
    "adjustment",
    "credit",
)


async def _section(
    gateway: Gateway, session: Session, service: str, path: str, params: dict[str, Any]
) -> dict[str, Any]:
    """{"data": ...} or {"error": why}; a merchant mismatch is raised (the page refuses)."""
    try:
        return {"data": await gateway.get(session, service, path, params)}
    except ServiceRefused as exc:
        if exc.code == "merchant_mismatch":
            raise
        return {"error": exc.message}
    except NoKey as exc:
        return {"error": str(exc)}


@router.get("/customers", response_model=None)
async def find_customer(request: Request) -> Response:
    signed_in(request)
    wanted = request.query_params.get("id", "").strip()
    if not CUSTOMER_ID.match(wanted):
        return render(
            request,
            "customer_search.html",
            {"problem": "id: a customer id is 1-64 letters, digits or ._:@-" if wanted else None},
            status=422 if wanted else 200,
        )
    return RedirectResponse(f"/customers/{wanted}", status_code=303)


@router.get("/customers/{customer_id}", response_class=HTMLResponse)
async def customer(request: Request, customer_id: str) -> HTMLResponse:
    session = signed_in(request)
    if not CUSTOMER_ID.match(customer_id):
        return render(
            request,
            "customer_search.html",
            {"problem": "id: a customer id is 1-64 letters, digits or ._:@-"},
            status=422,
        )
    q = request.query_params
    ledger_filters = {
        "kind": q.get("kind", ""),
        "merchant_id": q.get("merchant_id", ""),
        "from": q.get("from", ""),
        "to": q.get("to", ""),
    }
    gateway, base = gateway_of(request), f"/v1/customers/{customer_id}"
    activity, balance, ledger, rewards = await asyncio.gather(
        _section(gateway, session, "alerts", f"{base}/activity", {}),
        _section(gateway, session, "points", f"{base}/balance", {}),
        _section(
            gateway,
            session,
            "points",
            f"{base}/ledger",
            {**ledger_filters, "cursor": q.get("cursor", ""), "limit": 25},
        ),
        _section(gateway, session, "rewards", f"{base}/rewards", {}),
    )
    claims = await _guarantee_claims(gateway, session, rewards.get("data"))
    return render(
        request,
        "customer.html",
        {
            "customer_id": customer_id,
            "activity": activity,
            "balance": balance,
            "ledger": ledger,
            "rewards": rewards,
            "claims": claims,
            "ledger_filters": ledger_filters,
            "ledger_kinds": LEDGER_KINDS,
        },
    )


async def _guarantee_claims(
    gateway: Gateway, session: Session, rewards: Any
) -> list[dict[str, Any]]:
    ids = rewards.get("guarantee_claims", []) if isinstance(rewards, dict) else []
    found = []
    for claim_id in ids[:20]:
        one = await _section(gateway, session, "rewards", f"/v1/guarantee-claims/{claim_id}", {})
        found.append(one.get("data") or {"claim_id": claim_id, "status": one.get("error")})
    return found
