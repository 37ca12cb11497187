"""The people's queues: lapse alerts (acknowledge with a note) and held compensations."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from console.web import (
    back_to,
    gateway_of,
    items_in,
    now_of,
    parse_time,
    posted_form,
    render,
    signed_in,
)

router = APIRouter()

ALERT_FILTERS = ("state", "status", "kind", "merchant", "segment", "acknowledged", "cursor")
ESCALATES_AFTER, DECIDE_WITHIN = timedelta(hours=12), timedelta(hours=24)


@router.get("/alerts", response_class=HTMLResponse)
async def alerts(request: Request) -> HTMLResponse:
    session = signed_in(request)
    chosen = {k: request.query_params.get(k, "") for k in ALERT_FILTERS}
    page = await gateway_of(request).get(session, "alerts", "/v1/alerts", chosen)
    filters = {k: v for k, v in chosen.items() if k != "cursor"}
    return render(
        request,
        "alerts.html",
        {
            "alerts": items_in(page, "alerts"),
            "next_cursor": page.get("next_cursor"),
            "filters": filters,
        },
    )


@router.post("/alerts/{alert_id}/ack")
async def acknowledge(request: Request, alert_id: uuid.UUID) -> Response:
    session = signed_in(request)
    form = await posted_form(request)
    note = form.get("note", "").strip()
    back = form.get("back", "/alerts")
    if not back.startswith("/") or back.startswith("//"):
        back = "/alerts"
    body = {"by": session.name, "note": note}
    done = await gateway_of(request).post(session, "alerts", f"/v1/alerts/{alert_id}/ack", body)
    customer = done.get("customer_id", "") if isinstance(done, dict) else ""
    return back_to(back, session, f"Alert for {customer} acknowledged.")


def _clocks(review: dict[str, Any], now: Any) -> dict[str, Any]:
    created = parse_time(review.get("created_at"))
    if created is None:
        return {}
    escalates, due = created + ESCALATES_AFTER, created + DECIDE_WITHIN
    return {
        "escalates_at": escalates,
        "due_at": due,
        "escalated": now >= escalates,
        "overdue": now >= due,
    }


@router.get("/reviews", response_class=HTMLResponse)
async def reviews(request: Request) -> HTMLResponse:
    session = signed_in(request)
    found = await gateway_of(request).get(session, "rewards", "/v1/admin/reviews")
    now = now_of(request)
    queue = [{**r, "clocks": _clocks(r, now)} for r in items_in(found, "reviews")]
    return render(request, "reviews.html", {"reviews": queue})


@router.post("/reviews/{compensation_id}/{decision}")
async def decide(request: Request, compensation_id: uuid.UUID, decision: str) -> Response:
    session = signed_in(request)
    await posted_form(request)
    if decision not in ("approve", "reject"):
        return back_to("/reviews", session, f"Unknown decision {decision!r}.")
    path = f"/v1/admin/reviews/{compensation_id}/{decision}"
    done = await gateway_of(request).post(session, "rewards", path, {"actor": session.name})
    status = done.get("status", decision) if isinstance(done, dict) else decision
    return back_to("/reviews", session, f"Compensation {compensation_id}: {status}.")
