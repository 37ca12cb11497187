"""The overview (charts) and the programme: rules, policies, catalogue, caps, liability."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from console.charts import Series, bars_against_limits, grouped_columns
from console.gateway import Gateway, NoKey, ServiceRefused
from console.sessions import Session
from console.web import gateway_of, items_in, now_of, parse_time, render, signed_in

router = APIRouter()

WEEKS_SHOWN = 12
ALERT_PAGES = 10  # 2,000 alerts at most feed the weekly chart


async def _try(
    gateway: Gateway,
    session: Session,
    service: str,
    path: str,
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    try:
        return {"data": await gateway.get(session, service, path, params)}
    except (ServiceRefused, NoKey) as exc:
        return {"error": exc.message if isinstance(exc, ServiceRefused) else str(exc)}


async def _alerts_history(gateway: Gateway, session: Session) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = None
    for _ in range(ALERT_PAGES):
        page = await gateway.get(
            session, "alerts", "/v1/alerts", {"state": "all", "limit": 200, "cursor": cursor}
        )
        found += items_in(page)
        cursor = page.get("next_cursor") if isinstance(page, dict) else None
        if not cursor:
            break
    return found


def weekly_alerts(alerts: list[dict[str, Any]], now: datetime) -> tuple[list[str], Series, Series]:
    """Alerts opened and alerts closed by a purchase (reactivated), per week, last 12 weeks."""
    weeks = [(now - timedelta(weeks=WEEKS_SHOWN - 1 - i)).date() for i in range(WEEKS_SHOWN)]
    starts = [w - timedelta(days=w.weekday()) for w in weeks]
    opened: Counter[Any] = Counter()
    reactivated: Counter[Any] = Counter()
    for alert in alerts:
        for moment, counter in (
            (alert.get("opened_at"), opened),
            (alert.get("closed_at"), reactivated),
        ):
            at = parse_time(moment)
            if at is not None:
                day = at.date()
                counter[day - timedelta(days=day.weekday())] += 1
    labels = [s.strftime("%d %b") for s in starts]
    return (
        labels,
        Series("opened", [opened[s] for s in starts], "bar-a"),
        Series("reactivated", [reactivated[s] for s in starts], "bar-b"),
    )


@router.get("/", response_class=HTMLResponse)
async def overview(request: Request) -> HTMLResponse:
    session = signed_in(request)
    gateway = gateway_of(request)
    charts: dict[str, str] = {}
    errors: list[str] = []
    try:
        labels, opened, back = weekly_alerts(
            await _alerts_history(gateway, session), now_of(request)
        )
        charts["alerts"] = grouped_columns(
            "Alerts opened vs reactivated per week", labels, [opened, back]
        )
    except (ServiceRefused, NoKey) as exc:
        errors.append(str(exc))
    budgets, liability = await asyncio.gather(
        _try(gateway, session, "rewards", "/v1/admin/reports/budgets"),
        _try(gateway, session, "points", "/v1/admin/liability"),
    )
    if "data" in budgets:
        rows = [
            (
                m.get("merchant_id", "?"),
                (m.get("refunded_minor") or 0) / 100,
                None if m.get("budget_minor") is None else m["budget_minor"] / 100,
            )
            for m in items_in(budgets["data"], "merchants")
        ]
        charts["budgets"] = bars_against_limits(
            "Compensation refunds this month against budget", rows, "EUR"
        )
    else:
        errors.append(budgets["error"])
    if "data" in liability:
        rows = [
            (
                m.get("merchant_id") or "programme",
                float(m.get("available") or 0) + float(m.get("pending") or 0),
                None,
            )
            for m in items_in(liability["data"], "merchants")
        ]
        charts["liability"] = bars_against_limits(
            "Points liability per merchant (available + pending)", rows, "points"
        )
    else:
        errors.append(liability["error"])
    return render(
        request,
        "overview.html",
        {
            "charts": charts,
            "errors": errors,
            "budgets": budgets.get("data"),
            "liability": liability.get("data"),
        },
    )


@router.get("/programme", response_class=HTMLResponse)
async def programme(request: Request) -> HTMLResponse:
    session = signed_in(request)
    gateway = gateway_of(request)
    reads = {
        "rules": ("points", "/v1/admin/rules"),
        "liability": ("points", "/v1/admin/liability"),
        "policies": ("rewards", "/v1/admin/policies"),
        "catalogue": ("rewards", "/v1/admin/catalogue"),
        "milestones": ("rewards", "/v1/admin/milestone-rules"),
        "referral": ("rewards", "/v1/admin/referral-programme"),
        "budgets": ("rewards", "/v1/admin/reports/budgets"),
        "rewards": ("rewards", "/v1/admin/reward-definitions"),
        "thresholds": ("alerts", "/v1/admin/thresholds"),
    }
    answers = await asyncio.gather(*(_try(gateway, session, s, p) for s, p in reads.values()))
    sections = dict(zip(reads, answers, strict=True))
    lists = {
        "rules": items_in(sections["rules"].get("data"), "rules", "versions"),
        "policies": items_in(sections["policies"].get("data"), "policies"),
        "catalogue": items_in(sections["catalogue"].get("data"), "items", "catalogue"),
        "milestones": items_in(sections["milestones"].get("data"), "rules", "milestone_rules"),
        "rewards": items_in(sections["rewards"].get("data"), "reward_definitions", "rewards"),
        "budgets": items_in(sections["budgets"].get("data"), "merchants"),
        "liability": items_in(sections["liability"].get("data"), "merchants"),
    }
    return render(request, "programme.html", {"sections": sections, "lists": lists})
