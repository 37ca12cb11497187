"""The console's only way to the platform: the services' HTTP APIs, with the person's key.

Answers are read as plain JSON documents and every field is looked up defensively, so a
service that adds fields (or pages) does not break a page. A refusal (4xx problem+json) is
raised as `ServiceRefused` carrying the service's own words, which the page shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from console.sessions import SERVICES, ServiceAccess, Session

# One cheap admin-only read per service: 200 says admin, 403 a valid key without admin,
# 401 a key that is not this service's.
_ADMIN_PROBES = {
    "points": "/v1/admin/rules",
    "rewards": "/v1/admin/referral-programme",
    "alerts": "/v1/admin/thresholds",
}


class ServiceRefused(Exception):
    """A service said no (or could not be reached); `message` is fit to show a person."""

    def __init__(self, service: str, status: int, problem: Mapping[str, Any]) -> None:
        self.service, self.status, self.problem = service, status, dict(problem)
        super().__init__(self.message)

    @property
    def code(self) -> str:
        return str(self.problem.get("code") or "")

    @property
    def message(self) -> str:
        if self.status == 0:
            return f"the {self.service} service cannot be reached ({self.problem.get('detail')})"
        words = self.problem.get("detail") or self.problem.get("title") or "refused"
        return f"the {self.service} service answered {self.status}: {words}"


class NoKey(Exception):
    """The signed-in person gave no key this service accepts."""

    def __init__(self, service: str) -> None:
        self.service = service
        super().__init__(f"you signed in without a key for the {service} service")


def key_id_of(key: str) -> str:
    """The public part of `lk_<key_id>_<secret>` (what logs and listings name a key by)."""
    parts = key.split("_")
    return parts[1] if len(parts) == 3 and parts[0] == "lk" else "unknown"


class Gateway:
    def __init__(self, urls: Mapping[str, str], client: httpx.AsyncClient) -> None:
        self.urls = dict(urls)
        self.client = client

    async def get(
        self, session: Session, service: str, path: str, params: Mapping[str, Any] | None = None
    ) -> Any:
        return await self._call(session, service, "GET", path, params=params)

    async def post(self, session: Session, service: str, path: str, body: Mapping[str, Any]) -> Any:
        return await self._call(session, service, "POST", path, body=body)

    async def _call(
        self,
        session: Session,
        service: str,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> Any:
        key = session.key_for(service)
        if key is None:
            raise NoKey(service)
        clean = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        response = await self._send(service, key, method, path, clean, body)
        if response.status_code >= 400:
            raise ServiceRefused(service, response.status_code, _problem(response))
        return response.json() if response.content else None

    async def _send(
        self,
        service: str,
        key: str,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        body: Mapping[str, Any] | None,
    ) -> httpx.Response:
        try:
            return await self.client.request(
                method,
                self.urls[service] + path,
                params=params,
                json=body,
                headers={"Authorization": f"Bearer {key}"},
            )
        except httpx.HTTPError as exc:
            raise ServiceRefused(service, 0, {"detail": type(exc).__name__}) from exc

    async def access_of(
        self, key: str, unreachable: set[str] | None = None
    ) -> dict[str, ServiceAccess]:
        """Which services accept `key`, and whether as an admin (`unreachable` collects the
        services that did not answer, so a refusal can say so)."""
        found: dict[str, ServiceAccess] = {}
        for service in SERVICES:
            try:
                response = await self._send(service, key, "GET", _ADMIN_PROBES[service], None, None)
            except ServiceRefused:
                if unreachable is not None:
                    unreachable.add(service)
                continue
            if response.status_code in (200, 403):
                admin = response.status_code == 200
                found[service] = ServiceAccess(key, key_id_of(key), admin)
        return found


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        document = response.json()
    except ValueError:
        return {"detail": response.text[:200] or response.reason_phrase}
    return document if isinstance(document, dict) else {"detail": str(document)[:200]}
