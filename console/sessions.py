"""Who is signed in: API keys kept server-side, a signed random id in the cookie.

The cookie carries only a random session id signed with itsdangerous (so a forged or
tampered id is refused before any lookup); the keys themselves never leave the server, never
appear in a URL and are never logged. Every session, signed in or not, has a CSRF token that
each form posts back and the console compares in constant time.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from itsdangerous import BadSignature, URLSafeTimedSerializer

SERVICES = ("points", "rewards", "alerts")
MAX_SESSIONS = 10_000  # beyond this, the oldest sessions are forgotten (memory stays bounded)


@dataclass(frozen=True)
class ServiceAccess:
    """What one key may do at one service, as the service answered at sign-in."""

    key: str
    key_id: str
    admin: bool


@dataclass
class Session:
    session_id: str
    csrf_token: str
    expires_at: datetime
    name: str = ""
    access: dict[str, ServiceAccess] = field(default_factory=dict)
    flash: list[str] = field(default_factory=list)

    @property
    def signed_in(self) -> bool:
        return bool(self.access)

    def key_for(self, service: str) -> str | None:
        found = self.access.get(service)
        return found.key if found else None

    def is_admin(self, service: str) -> bool:
        found = self.access.get(service)
        return bool(found and found.admin)

    def csrf_ok(self, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(presented, self.csrf_token)


class SessionStore:
    """Sessions in memory, each ending `lifetime` after it started (injectable clock)."""

    def __init__(
        self,
        secret: str,
        lifetime: timedelta,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="loyalty-console-session")
        self._lifetime = lifetime
        self._clock = clock
        self._sessions: dict[str, Session] = {}

    def new(self) -> Session:
        self._forget_expired()
        while len(self._sessions) >= MAX_SESSIONS:  # dicts keep insertion order: oldest first
            del self._sessions[next(iter(self._sessions))]
        session = Session(
            session_id=secrets.token_urlsafe(32),
            csrf_token=secrets.token_urlsafe(32),
            expires_at=self._clock() + self._lifetime,
        )
        self._sessions[session.session_id] = session
        return session

    def cookie_value(self, session: Session) -> str:
        return str(self._serializer.dumps(session.session_id))

    def find(self, cookie: str | None) -> Session | None:
        if not cookie:
            return None
        try:
            session_id = self._serializer.loads(cookie, max_age=int(self._lifetime.total_seconds()))
        except BadSignature:
            return None
        session = self._sessions.get(str(session_id))
        if session is None or session.expires_at <= self._clock():
            self._sessions.pop(str(session_id), None)
            return None
        return session

    def sign_in(self, old: Session, name: str, access: dict[str, ServiceAccess]) -> Session:
        """A fresh session id and CSRF token at sign-in (no fixation of the anonymous id)."""
        self.end(old)
        session = self.new()
        session.name, session.access = name, dict(access)
        return session

    def end(self, session: Session) -> None:
        self._sessions.pop(session.session_id, None)

    def _forget_expired(self) -> None:
        now = self._clock()
        for session_id in [s for s, v in self._sessions.items() if v.expires_at <= now]:
            del self._sessions[session_id]
