"""Console sessions: a signed random id in the cookie, keys only on the server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from console.sessions import ServiceAccess, SessionStore

KEY = "lk_0123456789abcdef_secret-part"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def _signed_in(store: SessionStore) -> str:
    session = store.sign_in(store.new(), "Ada", {"points": ServiceAccess(KEY, "0123", True)})
    return store.cookie_value(session)


def test_the_cookie_names_the_session_but_never_carries_the_key() -> None:
    store = SessionStore("s3cret", timedelta(hours=8), Clock())
    cookie = _signed_in(store)
    assert KEY not in cookie and "secret-part" not in cookie
    found = store.find(cookie)
    assert found is not None and found.key_for("points") == KEY


def test_a_tampered_or_foreign_cookie_is_no_session() -> None:
    store = SessionStore("s3cret", timedelta(hours=8), Clock())
    cookie = _signed_in(store)
    assert store.find(cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB")) is None
    other = SessionStore("another secret", timedelta(hours=8), Clock())
    assert other.find(cookie) is None


def test_a_session_ends_after_its_lifetime() -> None:
    clock = Clock()
    store = SessionStore("s3cret", timedelta(hours=8), clock)
    cookie = _signed_in(store)
    clock.now += timedelta(hours=8, seconds=1)
    assert store.find(cookie) is None


def test_signing_in_replaces_the_anonymous_session_and_its_csrf_token() -> None:
    store = SessionStore("s3cret", timedelta(hours=8), Clock())
    anonymous = store.new()
    signed = store.sign_in(anonymous, "Ada", {})
    assert signed.session_id != anonymous.session_id
    assert signed.csrf_token != anonymous.csrf_token
    assert store.find(store.cookie_value(anonymous)) is None
    assert signed.csrf_ok(signed.csrf_token) and not signed.csrf_ok(anonymous.csrf_token)
    assert not signed.csrf_ok(None)
