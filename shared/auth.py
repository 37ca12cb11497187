"""API keys: issued once, stored hashed, checked on every partner request.

A key reads `lk_<key_id>_<secret>`. The key id is public (it names the key in
logs, listings and revocations); the secret is 256 random bits, shown once at
creation and stored only as a SHA-256 digest bound to its key id. A slow hash
(bcrypt, argon2) buys nothing for a secret of that entropy and would cost
milliseconds on the hot path.

Authentication is cached in-process for a few seconds (`PrincipalCache`), so a
partner reading balances at 500 requests/s costs one database lookup per key
per TTL, not one per request. The price: a revoked key keeps working for at
most the TTL (5 s by default) in each process that saw it just before the
revocation. Only successes are cached, keyed by a digest of the whole token, so
a wrong secret is never accepted from the cache.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar, NamedTuple

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.db import api_keys
from shared.errors import NotFound, Unauthorized, Unprocessable

KEY_PREFIX = "lk"
_KEY_ID_BYTES = 8  # 16 hex characters: no underscore, so the token splits unambiguously
_SECRET_BYTES = 32


class Scope(str):
    """What a key may do, e.g. `points:read`. The chassis knows only `Scope.ADMIN`, which
    implies every other scope; each service declares its own in `services/<svc>/scopes.py`
    (`POINTS_READ = Scope("points:read")`) and its routes `require` them.

    A scope is lower-case words (letters, digits, `_`, `-`), optionally `area:action`, so it
    prints unambiguously in a comma-separated key listing."""

    __slots__ = ()
    ADMIN: ClassVar[Scope]

    def __new__(cls, value: str) -> Scope:
        if not _SCOPE_FORM.fullmatch(value):
            raise ValueError(f"not a scope name: {value!r} (e.g. 'points:read')")
        return super().__new__(cls, value)

    @property
    def value(self) -> str:
        """The scope as plain text (as stored and shown)."""
        return str.__str__(self)

    def __repr__(self) -> str:
        return f"Scope({self.value!r})"


_SCOPE_FORM = re.compile(r"[a-z][a-z0-9_-]*(:[a-z][a-z0-9_-]*)?")
Scope.ADMIN = Scope("admin")

# The scopes keys may be issued with: admin, plus what the composition root registered (the
# `loyalty` CLI registers every service's). Only issuing validates against it: a stored scope
# no route requires grants nothing anyway.
_KNOWN: dict[str, Scope] = {}


def register_scopes(*scopes: Scope) -> tuple[Scope, ...]:
    """Make `scopes` known to `parse_scopes` (so keys can be issued with them); registering a
    scope twice is harmless. Returns them, so a declaration can read
    `SCOPES = register_scopes(READ, WRITE)`."""
    for scope in scopes:
        if not isinstance(scope, Scope):
            raise TypeError(f"register Scope values, not {type(scope).__name__} {scope!r}")
        _KNOWN.setdefault(scope.value, scope)
    return scopes


def known_scopes() -> tuple[Scope, ...]:
    """Every scope a key may be issued with, in registration order, `admin` last."""
    return (*_KNOWN.values(), Scope.ADMIN)


def parse_scopes(values: Iterable[str]) -> frozenset[Scope]:
    """Scopes from text; an unknown scope is refused rather than silently dropped."""
    values = [str(value) for value in values]
    known = {scope.value: scope for scope in known_scopes()}
    unknown = sorted(value for value in values if value not in known)
    if unknown:
        allowed = ", ".join(known)
        raise Unprocessable(
            f"unknown scope(s) {', '.join(unknown)}; allowed: {allowed}", code="scope_unknown"
        )
    return frozenset(known[value] for value in values)


@dataclass(frozen=True)
class ApiPrincipal:
    """Who is calling: the key, what it may do, and the merchant it is bound to (if any)."""

    key_id: str
    scopes: frozenset[Scope]
    merchant_id: str | None = None

    def allows(self, scope: Scope) -> bool:
        return Scope.ADMIN in self.scopes or scope in self.scopes

    def may_act_for(self, merchant_id: str) -> bool:
        """A key bound to a merchant acts only for it; an unbound key acts for any."""
        return self.merchant_id is None or self.merchant_id == merchant_id


class PresentedKey(NamedTuple):
    key_id: str
    secret: str


class IssuedKey(NamedTuple):
    """A freshly created key; `plaintext` exists only here and is never stored."""

    key_id: str
    plaintext: str


@dataclass(frozen=True)
class ApiKeyRecord:
    """A stored key as listed to operators (never with its secret)."""

    key_id: str
    name: str
    scopes: tuple[str, ...]
    merchant_id: str | None
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def format_key(key_id: str, secret: str) -> str:
    return f"{KEY_PREFIX}_{key_id}_{secret}"


def parse_key(token: str) -> PresentedKey | None:
    """Split `lk_<key_id>_<secret>`; None when the text cannot be one of our keys."""
    prefix, _, rest = token.strip().partition("_")
    key_id, _, secret = rest.partition("_")
    well_formed = (
        prefix == KEY_PREFIX
        and len(key_id) == 2 * _KEY_ID_BYTES
        and all(c in "0123456789abcdef" for c in key_id)
        and len(secret) >= 32
    )
    return PresentedKey(key_id, secret) if well_formed else None


def secret_digest(key_id: str, secret: str) -> bytes:
    """SHA-256 of the secret, bound to its key id so digests cannot be swapped between rows."""
    return hashlib.sha256(f"{key_id}:{secret}".encode()).digest()


def new_key() -> tuple[PresentedKey, str]:
    """A random key id and secret, and the plaintext token to hand over once."""
    key = PresentedKey(secrets.token_hex(_KEY_ID_BYTES), secrets.token_urlsafe(_SECRET_BYTES))
    return key, format_key(key.key_id, key.secret)


async def create_key(
    conn: AsyncConnection,
    name: str,
    scopes: Iterable[Scope | str],
    merchant_id: str | None = None,
) -> IssuedKey:
    """Store a new key (hashed) in the caller's transaction; the plaintext is returned once."""
    granted = parse_scopes(scopes)
    if not name.strip():
        raise Unprocessable("an API key needs a name", code="api_key_name_missing")
    if not granted:
        raise Unprocessable("an API key needs at least one scope", code="scope_missing")
    if merchant_id is not None and not merchant_id.strip():
        raise Unprocessable("merchant id must not be blank", code="merchant_id_blank")
    key, plaintext = new_key()
    await conn.execute(
        sa.insert(api_keys).values(
            key_id=key.key_id,
            name=name.strip(),
            secret_hash=secret_digest(key.key_id, key.secret),
            scopes=sorted(scope.value for scope in granted),
            merchant_id=merchant_id,
        )
    )
    return IssuedKey(key.key_id, plaintext)


async def list_keys(conn: AsyncConnection, *, include_revoked: bool = True) -> list[ApiKeyRecord]:
    """Every key, oldest first, without secrets."""
    query = sa.select(
        api_keys.c.key_id,
        api_keys.c.name,
        api_keys.c.scopes,
        api_keys.c.merchant_id,
        api_keys.c.created_at,
        api_keys.c.revoked_at,
    ).order_by(api_keys.c.created_at, api_keys.c.key_id)
    if not include_revoked:
        query = query.where(api_keys.c.revoked_at.is_(None))
    rows = (await conn.execute(query)).all()
    return [
        ApiKeyRecord(r.key_id, r.name, tuple(r.scopes), r.merchant_id, r.created_at, r.revoked_at)
        for r in rows
    ]


async def revoke_key(conn: AsyncConnection, key_id: str) -> bool:
    """Revoke a key; True if this call revoked it, False if it already was. Unknown: NotFound."""
    revoked = await conn.scalar(
        sa.update(api_keys)
        .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=sa.func.now())
        .returning(api_keys.c.key_id)
    )
    if revoked is not None:
        return True
    exists = await conn.scalar(sa.select(api_keys.c.key_id).where(api_keys.c.key_id == key_id))
    if exists is None:
        raise NotFound(f"no API key {key_id}", code="api_key_not_found")
    return False


# Compared against when the key id is unknown, so timing does not reveal which ids exist.
_DECOY_DIGEST = secret_digest("0" * 2 * _KEY_ID_BYTES, "decoy")


async def authenticate(conn: AsyncConnection, bearer: str | None) -> ApiPrincipal:
    """The principal behind a bearer token; Unauthorized when missing, wrong or revoked."""
    if not bearer:
        raise Unauthorized("send `Authorization: Bearer <key>`", code="api_key_missing")
    presented = parse_key(bearer)
    if presented is None:
        raise Unauthorized("the API key is not valid", code="api_key_invalid")
    row = (
        await conn.execute(
            sa.select(
                api_keys.c.secret_hash,
                api_keys.c.scopes,
                api_keys.c.merchant_id,
                api_keys.c.revoked_at,
            ).where(api_keys.c.key_id == presented.key_id)
        )
    ).one_or_none()
    stored = bytes(row.secret_hash) if row is not None else _DECOY_DIGEST
    matches = hmac.compare_digest(stored, secret_digest(presented.key_id, presented.secret))
    if row is None or not matches:
        raise Unauthorized("the API key is not valid", code="api_key_invalid")
    if row.revoked_at is not None:
        raise Unauthorized("the API key has been revoked", code="api_key_revoked")
    # Every stored scope came through `parse_scopes`; one no route requires (a scope removed in
    # a later release) grants nothing, since a route asks for the scopes it names.
    scopes = frozenset(Scope(s) for s in row.scopes if _SCOPE_FORM.fullmatch(s))
    return ApiPrincipal(presented.key_id, scopes, row.merchant_id)


@dataclass
class PrincipalCache:
    """Recently authenticated tokens, each trusted for `ttl` seconds, at most `max_entries`."""

    ttl: float = 5.0
    max_entries: int = 10_000
    clock: Callable[[], float] = time.monotonic
    _entries: dict[bytes, tuple[float, ApiPrincipal]] = field(default_factory=dict)

    @staticmethod
    def _token_digest(bearer: str) -> bytes:
        return hashlib.sha256(bearer.encode()).digest()

    def get(self, bearer: str) -> ApiPrincipal | None:
        token = self._token_digest(bearer)
        entry = self._entries.get(token)
        if entry is None:
            return None
        expires_at, principal = entry
        if self.clock() >= expires_at:
            del self._entries[token]
            return None
        return principal

    def put(self, bearer: str, principal: ApiPrincipal) -> None:
        if self.ttl <= 0:
            return
        now = self.clock()
        if len(self._entries) >= self.max_entries:
            self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
            while len(self._entries) >= self.max_entries:
                del self._entries[next(iter(self._entries))]  # oldest insertion first
        self._entries[self._token_digest(bearer)] = (now + self.ttl, principal)

    def forget(self, key_id: str) -> None:
        """Drop a key at once (for revocations made in this process)."""
        self._entries = {k: v for k, v in self._entries.items() if v[1].key_id != key_id}


class ApiKeyAuthenticator:
    """`authenticate` in front of a `PrincipalCache`: the hot path of every partner request.

    Requests that bring the same uncached token at the same time share one database
    look-up. When a busy key's cache entry expires, every request arriving during the
    look-up used to miss too and check out a connection of its own: at 1,000 balance reads
    per second, a burst of look-ups every TTL, the read's slowest requests
    (`python -m bench points`).
    """

    def __init__(self, engine: AsyncEngine, cache: PrincipalCache | None = None) -> None:
        self.engine = engine
        self.cache = cache if cache is not None else PrincipalCache()
        self._lookups: dict[bytes, asyncio.Future[ApiPrincipal]] = {}

    async def authenticate(self, bearer: str | None) -> ApiPrincipal:
        if not bearer:
            return await self._look_up(bearer)
        cached = self.cache.get(bearer)
        if cached is not None:
            return cached
        token = PrincipalCache._token_digest(bearer)
        lookup = self._lookups.get(token)
        if lookup is None:
            lookup = self._lookups[token] = asyncio.ensure_future(self._look_up(bearer))
            lookup.add_done_callback(lambda done: self._landed(token, done))
        # Shielded: a caller that goes away does not cancel the look-up the others await.
        return await asyncio.shield(lookup)

    async def _look_up(self, bearer: str | None) -> ApiPrincipal:
        async with self.engine.connect() as conn:
            principal = await authenticate(conn, bearer)
        assert bearer is not None  # authenticate refuses a missing token
        self.cache.put(bearer, principal)
        return principal

    def _landed(self, token: bytes, lookup: asyncio.Future[ApiPrincipal]) -> None:
        if self._lookups.get(token) is lookup:
            del self._lookups[token]
        if not lookup.cancelled():
            lookup.exception()  # retrieved, even if every caller went away
