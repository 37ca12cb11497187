"""`loyalty invariants`: run every service's invariant checks and say exactly what ran.

For each service, in order:
1. its admin endpoint `GET <url>/v1/admin/invariants` with the local admin key (URL and
   key from `<NAME>_URL` / `<NAME>_ADMIN_KEY`, else `var/services.json` that `make run`
   writes, else the conventional port);
2. when the service does not answer or has no such endpoint, its invariant checks
   (`direct_checks()`), run against its database (`<NAME>_DATABASE_URL` or var/env);
3. otherwise it is reported as not checked.

Exit status: 0 when everything that ran is sound, 1 when any check found a violation,
2 when no check could run at all.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db import create_engine
from shared.errors import is_transient
from shared.settings import asyncpg_url
from tooling.cli_env import CommandError, database_url, service_endpoint
from tooling.migrate import SERVICES

INVARIANTS_PATH = "/v1/admin/invariants"
MAX_PAGES = 10_000  # a bound on cursor-following, so a faulty server cannot loop forever

# A service's invariant checks: everything out of balance in its database (empty when sound).
InvariantCheck = Callable[[AsyncConnection], Awaitable[Sequence[object]]]


def direct_checks() -> dict[str, InvariantCheck]:
    """Each service's invariant checks (imported when first needed: the alerts service brings
    scipy, which `loyalty` should not load for every command)."""
    from services.alerts.invariants import invariant_violations as alerts_violations
    from services.points.invariants import invariant_violations as points_violations
    from services.rewards.invariants import invariant_violations as rewards_violations

    return {"points": points_violations, "rewards": rewards_violations, "alerts": alerts_violations}


def check_name(check: InvariantCheck) -> str:
    """`module:function`, how a report names the check that ran."""
    return f"{check.__module__}:{getattr(check, '__name__', repr(check))}"


@dataclass(frozen=True)
class CheckResult:
    """What ran for one service and what it found."""

    service: str
    how: str  # "http", "direct" or "not checked"
    sound: bool | None  # None: nothing ran
    detail: str

    def line(self) -> str:
        verdict = {True: "ok", False: "VIOLATED", None: "not checked"}[self.sound]
        return f"{self.service:<8} {verdict:<11} via {self.how}: {self.detail}"


def verdict_of(document: Any) -> tuple[bool, str]:
    """Read an invariants response: sound unless it lists violations or says ok=false."""
    if not isinstance(document, dict):
        return False, f"unexpected answer: {str(document)[:200]}"
    violations = document.get("violations")
    if isinstance(violations, list):
        sound = not violations and document.get("ok", True) is not False
        shown = json.dumps(violations[:5], default=str)
        return sound, f"{len(violations)} violation(s)" + ("" if sound else f": {shown}")
    if "ok" in document:
        return bool(document["ok"]), json.dumps(document, default=str)[:300]
    return False, f"answer has neither `violations` nor `ok`: {json.dumps(document)[:200]}"


def _get_json(url: str, admin_key: str | None, timeout: float) -> Any:
    request = urllib.request.Request(url)  # noqa: S310 - an operator-given URL
    if admin_key:
        request.add_header("Authorization", f"Bearer {admin_key}")
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        return json.loads(response.read())


def _all_pages(url: str, admin_key: str | None, timeout: float) -> Any:
    """The invariants answer over every page: violations of each page, following next_cursor."""
    document = _get_json(url, admin_key, timeout)
    pages = MAX_PAGES
    while isinstance(document, dict) and document.get("next_cursor") and pages > 0:
        query = urllib.parse.urlencode({"cursor": document["next_cursor"]})
        page = _get_json(f"{url}?{query}", admin_key, timeout)
        if not isinstance(page, dict):
            return page
        page["violations"] = [*document.get("violations", []), *page.get("violations", [])]
        document, pages = page, pages - 1
    return document


def _http_check(service: str, timeout: float) -> CheckResult:
    """The service's own endpoint; `sound` is None when it is not running or has none."""
    endpoint = service_endpoint(service)
    how = f"GET {endpoint.url}{INVARIANTS_PATH}"
    try:
        document = _all_pages(endpoint.url + INVARIANTS_PATH, endpoint.admin_key, timeout)
    except urllib.error.HTTPError as exc:
        if exc.code in (404, 405):
            return CheckResult(service, "-", None, f"{endpoint.url} has no {INVARIANTS_PATH}")
        body = exc.read()[:300].decode(errors="replace")
        return CheckResult(service, how, None, f"HTTP {exc.code}: {body}")
    except (urllib.error.URLError, OSError, json.JSONDecodeError) as exc:
        return CheckResult(service, "-", None, f"{endpoint.url} did not answer ({exc})")
    sound, detail = verdict_of(document)
    return CheckResult(service, how, sound, detail)


async def _run_direct(service: str, database_url: str | None, why: str) -> CheckResult:
    check = direct_checks().get(service)
    if check is None:
        return CheckResult(service, "-", None, f"{why}; no direct check known")
    name = check_name(check)
    if not database_url:
        return CheckResult(service, name, None, "no database URL known")
    engine = create_engine(asyncpg_url(database_url), pool_size=1)
    try:
        async with engine.connect() as conn:
            found = await check(conn)
    except Exception as exc:
        if not is_transient(exc):
            raise
        return CheckResult(service, name, None, f"database unreachable: {exc}")
    finally:
        await engine.dispose()
    detail = f"{len(found)} out of balance" + (f": {list(found[:10])}" if found else "")
    return CheckResult(service, f"{name} (direct)", not found, detail)


async def check_service(service: str, db_url: str | None, patience: float) -> CheckResult:
    """The HTTP endpoint if the service answers it, else the direct check, else nothing."""
    result = await asyncio.to_thread(_http_check, service, patience)
    if result.sound is not None or result.how != "-":
        return result
    return await _run_direct(service, db_url, result.detail)


def exit_status(results: list[CheckResult]) -> int:
    if any(r.sound is False for r in results):
        return 1
    return 0 if any(r.sound for r in results) else 2


async def invariants(args: argparse.Namespace) -> int:
    unknown = [s for s in args.services if s not in SERVICES]
    if unknown:
        raise CommandError(f"unknown service(s) {unknown}; expected some of {list(SERVICES)}")
    results = []
    for service in args.services or SERVICES:
        try:
            url: str | None = database_url(service, None)
        except CommandError:
            url = None
        results.append(await check_service(service, url, args.timeout))
    for result in results:
        print(result.line())
    return exit_status(results)


def add_invariant_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    parser = commands.add_parser("invariants", help="run every service's invariant checks")
    parser.add_argument("services", nargs="*", help="points, rewards, alerts (default: all)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per service")
    parser.set_defaults(run=invariants)
