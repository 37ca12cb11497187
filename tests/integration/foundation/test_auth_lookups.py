"""Requests that bring one uncached token at the same time share one database look-up
(`ApiKeyAuthenticator`), against a real PostgreSQL: a busy key whose cache entry expires
costs one look-up, not one per request in flight, and each request still gets the verdict
for its own token."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.points.scopes import POINTS_READ
from shared import auth
from shared.auth import ApiKeyAuthenticator, ApiPrincipal, PrincipalCache, create_key
from shared.db import create_engine
from shared.errors import Unauthorized

pytestmark = pytest.mark.integration

CONCURRENT = 25


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def engine(points_db: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(points_db, pool_size=5)
    yield engine
    await engine.dispose()


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """The token of every database look-up `ApiKeyAuthenticator` makes."""
    seen: list[str | None] = []
    real = auth.authenticate

    async def counted(conn: AsyncConnection, bearer: str | None) -> ApiPrincipal:
        seen.append(bearer)
        await asyncio.sleep(0.05)  # a slow database: every request below arrives meanwhile
        return await real(conn, bearer)

    monkeypatch.setattr(auth, "authenticate", counted)
    return seen


async def _issue(engine: AsyncEngine, merchant: str | None = None) -> str:
    async with engine.begin() as conn:
        return (await create_key(conn, "partner", [POINTS_READ], merchant)).plaintext


async def test_concurrent_requests_with_one_token_share_one_look_up(
    engine: AsyncEngine, lookups: list[str | None]
) -> None:
    clock = Clock()
    authenticator = ApiKeyAuthenticator(engine, PrincipalCache(ttl=5.0, clock=clock))
    token = await _issue(engine, "grocer")
    principals = await asyncio.gather(
        *(authenticator.authenticate(token) for _ in range(CONCURRENT))
    )
    assert lookups == [token], f"{len(lookups)} look-ups for {CONCURRENT} concurrent requests"
    assert {p.merchant_id for p in principals} == {"grocer"}
    assert all(p.allows(POINTS_READ) for p in principals)

    clock.now += 5.0  # the entry expires: the next burst looks the key up once more
    await asyncio.gather(*(authenticator.authenticate(token) for _ in range(CONCURRENT)))
    assert lookups == [token, token]


async def test_a_wrong_secret_is_refused_to_every_request_and_never_shared_with_the_right_one(
    engine: AsyncEngine, lookups: list[str | None]
) -> None:
    authenticator = ApiKeyAuthenticator(engine, PrincipalCache(ttl=5.0, clock=Clock()))
    token = await _issue(engine)
    wrong = token[:-1] + ("x" if token[-1] != "x" else "y")
    outcomes = await asyncio.gather(
        *(authenticator.authenticate(t) for t in [wrong, token] * CONCURRENT),
        return_exceptions=True,
    )
    refused, trusted = outcomes[0::2], outcomes[1::2]
    assert all(isinstance(o, Unauthorized) for o in refused), refused
    assert all(isinstance(o, ApiPrincipal) for o in trusted), trusted
    assert Counter(lookups) == Counter([wrong, token]), "one look-up per distinct token"

    # A refusal is not cached: the wrong token is looked up again, the right one is not.
    with pytest.raises(Unauthorized):
        await authenticator.authenticate(wrong)
    await authenticator.authenticate(token)
    assert len(lookups) == 3


async def test_a_request_that_goes_away_does_not_cancel_the_shared_look_up(
    engine: AsyncEngine, lookups: list[str | None]
) -> None:
    authenticator = ApiKeyAuthenticator(engine, PrincipalCache(ttl=5.0, clock=Clock()))
    token = await _issue(engine)
    first = asyncio.ensure_future(authenticator.authenticate(token))
    await asyncio.sleep(0.01)  # the look-up is under way
    others = [asyncio.ensure_future(authenticator.authenticate(token)) for _ in range(5)]
    await asyncio.sleep(0)
    first.cancel()
    principals = await asyncio.gather(*others)
    assert first.cancelled()
    assert {p.key_id for p in principals} == {token.split("_")[1]}
    assert lookups == [token]
