"""The authentication cache trusts a token for at most its TTL and never a different token."""

from __future__ import annotations

from shared.auth import ApiPrincipal, PrincipalCache, Scope


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


READER = ApiPrincipal("k1", frozenset({Scope("points:read")}))
TOKEN = "lk_0123456789abcdef_" + "s" * 43


def test_a_cached_token_is_trusted_until_its_ttl_ends() -> None:
    clock = Clock()
    cache = PrincipalCache(ttl=5.0, clock=clock)
    cache.put(TOKEN, READER)
    clock.now += 4.9
    assert cache.get(TOKEN) == READER, "a token authenticated 4.9 s ago was not cached"
    clock.now += 0.1
    assert cache.get(TOKEN) is None, (
        "a token was trusted past its TTL: a revoked key would keep working"
    )


def test_a_token_with_a_different_secret_never_hits_the_cache() -> None:
    cache = PrincipalCache(clock=Clock())
    cache.put(TOKEN, READER)
    assert cache.get(TOKEN[:-1] + "x") is None, "a wrong secret was accepted from the cache"


def test_forgetting_a_key_drops_it_at_once() -> None:
    cache = PrincipalCache(clock=Clock())
    cache.put(TOKEN, READER)
    cache.forget("k1")
    assert cache.get(TOKEN) is None, "a key revoked in this process was still trusted"


def test_a_zero_ttl_disables_the_cache() -> None:
    cache = PrincipalCache(ttl=0, clock=Clock())
    cache.put(TOKEN, READER)
    assert cache.get(TOKEN) is None, "with ttl=0 every request must reach the database"


def test_the_cache_never_grows_past_its_bound() -> None:
    clock = Clock()
    cache = PrincipalCache(max_entries=3, clock=clock)
    tokens = [f"{TOKEN}{i}" for i in range(5)]
    for token in tokens:
        cache.put(token, READER)
    kept = [token for token in tokens if cache.get(token) is not None]
    assert kept == tokens[-3:], f"expected the 3 newest tokens cached, found {len(kept)}"
